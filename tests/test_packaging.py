"""The lab is a distribution of its own: the `clampdown` wheel carries none of it, serves without it,
and nothing in src/clampdown imports it; a broken CLI plugin is reported and skipped."""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

import clampdown.cli
from clampdown_lab.samba import SambaLab
from tests.ad.conftest import lab

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "clampdown"
__all__ = ["lab"]  # the AD tests' DC fixture, used by name
LAB_MODULES = ("clampdown_lab", "clampdown.lab")
LAB_FILE = re.compile(r"(^clampdown/lab/|^clampdown_lab/|emulator|samba)", re.IGNORECASE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """This environment without Clampdown's variables (a CLAMPDOWN_DATABASE__URL would override the
    config) and without anything that would put the repository on the new venv's path."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if not k.startswith("CLAMPDOWN_") and k not in drop}


@pytest.fixture(scope="module")
def clampdown_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `clampdown` wheel built from this checkout with the test venv's python."""
    work = tmp_path_factory.mktemp("wheel")
    # Build under tmp, not the checkout's build/: setuptools would pack stale files left there.
    extra = work / "build.cfg"
    extra.write_text(f"[build]\nbuild_base = {work / 'build'}\n", encoding="utf-8")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(work / "dist"), str(REPO)],
        env={**os.environ, "DIST_EXTRA_CONFIG": str(extra)},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("clampdown-*.whl")
    return wheel


@pytest.mark.slow
def test_the_clampdown_wheel_carries_no_lab(clampdown_wheel: Path) -> None:
    with zipfile.ZipFile(clampdown_wheel) as wheel:
        names = wheel.namelist()
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        declared = wheel.read(entry_points).decode()
    assert "clampdown/cli/__init__.py" in names  # the wheel is the product, not an empty shell
    assert any("/migrations/versions/" in n for n in names)  # package data still shipped (serve needs it)
    # The console's bundled editor and charts (scripts/build-web.sh, run by setup.py's build hook).
    assert "clampdown/web/static/dist/hunting-editor.js" in names
    assert [n for n in names if LAB_FILE.search(n)] == []
    assert not any(module in declared for module in LAB_MODULES), declared
    assert "[clampdown.lab]" not in declared


def test_the_wheel_metadata_is_modern_and_versioned_in_one_place(clampdown_wheel: Path) -> None:
    from clampdown import __version__

    with zipfile.ZipFile(clampdown_wheel) as wheel:
        names = wheel.namelist()
        (metadata,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        fields = wheel.read(metadata).decode().split("\n\n", 1)[0].splitlines()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert f"Version: {__version__}" in fields  # from clampdown.__version__, written nowhere else
    assert "License-Expression: Apache-2.0" in fields  # SPDX (PEP 639), not the deprecated table
    assert "License-File: LICENSE" in fields
    assert f"clampdown-{__version__}-" in clampdown_wheel.name
    assert "Provides-Extra: kerberos" in fields
    assert "Provides-Extra: lab" in fields and 'Requires-Dist: clampdown-lab; extra == "lab"' in fields
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert __version__ not in pyproject and "CHANGELOG" not in pyproject
    assert f"## {__version__}" in (REPO / "CHANGELOG.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def wheel_venv(clampdown_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with that wheel alone (dependencies from the configured index)."""
    home = tmp_path_factory.mktemp("venv") / "venv"
    venv.EnvBuilder(with_pip=True).create(home)
    installed = subprocess.run(
        [str(home / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         str(clampdown_wheel)],
        env=_clean_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    return home


@pytest.fixture
def served(wheel_venv: Path, tmp_path: Path) -> Iterator[str]:
    """`clampdown serve` from the wheel's venv on a fresh SQLite file, no providers; its base URL."""
    config = tmp_path / "clampdown.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "clampdown.db"}"\n', encoding="utf-8")
    port = _free_port()
    proc = subprocess.Popen(
        [str(wheel_venv / "bin" / "clampdown"), "--config", str(config), "serve", "--port", str(port)],
        cwd=tmp_path, env=_clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "clampdown serve from the wheel did not answer /healthz"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_the_wheel_alone_serves_without_the_lab(wheel_venv: Path, served: str) -> None:
    health = httpx.get(f"{served}/healthz", timeout=10)
    assert health.status_code == 200
    from clampdown import __version__

    command = str(wheel_venv / "bin" / "clampdown")
    shown = subprocess.run([command, "--version"], capture_output=True, text=True)
    assert shown.returncode == 0 and shown.stdout == f"clampdown {__version__}\n"
    ready = httpx.get(f"{served}/readyz", timeout=30)
    assert ready.status_code == 200, ready.text
    # The embedded worker, the hunting schedule and the containment watch are background jobs,
    # reported with the database.
    checks = {"database": "ok", "job:worker": "ok", "job:hunting": "ok", "job:containment-watch": "ok"}
    assert ready.json() == {"ready": True, "checks": checks}

    env = _clean_env()
    no_lab = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c", "import clampdown_lab"],
        cwd=wheel_venv, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert no_lab.returncode != 0
    assert "ModuleNotFoundError" in no_lab.stderr
    lab_help = subprocess.run(
        [str(wheel_venv / "bin" / "clampdown"), "lab", "--help"],
        cwd=wheel_venv, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert lab_help.returncode != 0
    assert "No such command" in lab_help.stdout + lab_help.stderr
    assert "not loaded" not in lab_help.stderr  # no plugin registered, none reported


def _lab_imports(tree: ast.AST) -> list[str]:
    """Every import of the lab in a module, also by name (importlib, `python -m`)."""
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        found += [n for n in names if any(n == m or n.startswith(f"{m}.") for m in LAB_MODULES)]
    return found


def test_nothing_in_clampdown_imports_the_lab() -> None:
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 50
    offenders = {
        str(path.relative_to(REPO)): hits
        for path in modules
        if (hits := _lab_imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))))
    }
    assert offenders == {}
    assert not (SRC / "lab").exists()


class _EntryPoint:
    def __init__(self, name: str, value: str, loaded: object) -> None:
        self.name, self.value, self._loaded = name, value, loaded

    def load(self) -> object:
        if isinstance(self._loaded, BaseException):
            raise self._loaded
        return self._loaded


def test_a_broken_cli_plugin_is_reported_once_and_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[typer.Typer] = []

    def fails(app: typer.Typer) -> None:
        raise RuntimeError("register went wrong")

    plugins = [
        _EntryPoint("gone", "no_such_module:register", ModuleNotFoundError("No module named 'no_such'")),
        _EntryPoint("fails", "tests:fails", fails),
        _EntryPoint("works", "tests:works", seen.append),
    ]
    monkeypatch.setattr(clampdown.cli, "entry_points", lambda group: plugins)
    root = typer.Typer()

    assert clampdown.cli.load_plugins(root) == ["works"]

    assert seen == [root]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert "'gone' (no_such_module:register) not loaded: ModuleNotFoundError" in lines[0]
    assert "'fails' (tests:fails) not loaded: RuntimeError: register went wrong" in lines[1]


@pytest.mark.parametrize("first", ["clampdown.cli", "clampdown_lab.cli"])
def test_the_lab_plugin_registers_whichever_module_is_imported_first(first: str) -> None:
    probe = (
        f"import {first}\n"
        "from clampdown.cli import app\n"
        "from clampdown.cli.hunting import ingest_app\n"
        "print(sorted(g.name for g in app.registered_groups if g.name == 'lab'),"
        " [c.name for c in ingest_app.registered_commands if c.name == 'lab-day'])\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""
    assert ran.stdout.strip() == "['lab'] ['lab-day']"


@pytest.fixture
def served_lab(lab: SambaLab, tmp_path: Path) -> Iterator[tuple[str, dict[str, Any], Path]]:
    """A whole lab (`clampdown lab up`: the shared Samba DC, this test's own Okta and Graph emulators)
    served by `clampdown serve` from the repository's venv; its URL, lab.json and lab dir."""
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    (lab_dir / "samba").symlink_to(lab.samba_dir)
    env = _clean_env()
    up = subprocess.run([sys.executable, "-m", "clampdown", "lab", "up", "--dir", str(lab_dir), "--no-next"],
                        env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert up.returncode == 0, up.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "clampdown", "--config", str(lab_dir / "clampdown.toml"), "serve",
         "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "clampdown serve did not start"
                time.sleep(0.2)
        yield base, json.loads((lab_dir / "lab.json").read_text()), lab_dir
    finally:
        proc.terminate()
        proc.wait(15)
        (lab_dir / "samba").unlink()  # the DC is shared: `lab down` stops only this lab's emulators
        subprocess.run([sys.executable, "-m", "clampdown", "lab", "down", "--dir", str(lab_dir)], env=env,
                       capture_output=True, timeout=120)  # fmt: skip


@pytest.mark.slow
def test_an_analyst_with_only_the_wheel_works_over_the_api(
    wheel_venv: Path, served_lab: tuple[str, dict[str, Any], Path], tmp_path: Path
) -> None:
    """The wheel in a fresh venv, no configuration file and no database credentials: log in with a
    profile, act, plan a containment, list the action center as CSV, log out."""
    base, lab_json, lab_dir = served_lab
    home = tmp_path / "analyst"
    home.mkdir()
    env = {**_clean_env(), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}

    def analyst(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(wheel_venv / "bin" / "clampdown"), *args], env=env, cwd=home, input=stdin,
                              capture_output=True, text=True, timeout=180)  # fmt: skip

    admin = lab_json["admin"]
    login = analyst(
        "login", "--server", base, "-u", admin["username"], "--password-stdin", stdin=admin["password"]
    )
    assert login.returncode == 0, login.stderr
    carol = next(p for p in lab_json["people"] if p["username"] == "carol.diaz")
    acted = analyst("act", "okta.suspend_user", carol["upn"], "-r", "INC-77 wheel", "--wait",
                    "--timeout", "90", "--json")  # fmt: skip
    assert acted.returncode == 0, acted.stderr
    action = json.loads(acted.stdout)
    assert action["status"] == "completed" and action["requested_by"] == admin["username"]
    config = tomllib.loads((lab_dir / "clampdown.toml").read_text())["providers"]["okta"]
    okta_token = Path(config["api_token"]["file"]).read_text().strip()
    in_okta = httpx.get(f"{config['org_url']}/api/v1/users/{carol['okta']['id']}",
                        headers={"Authorization": f"SSWS {okta_token}"}).json()  # fmt: skip
    assert in_okta["status"] == "SUSPENDED"  # read back in the emulator

    plan = analyst("contain", carol["upn"], "-r", "INC-77 plan", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned["actions"] == [] and {s["provider"] for s in planned["plan"]} >= {"ad", "entra", "okta"}
    listed = analyst("actions", "list", "--output", "csv")
    assert listed.returncode == 0, listed.stderr
    rows = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert [(r["id"], r["type"], r["status"]) for r in rows] == [
        (str(action["id"]), "okta.suspend_user", "completed")
    ]
    assert not list(home.rglob("clampdown.toml")) and "CLAMPDOWN_DATABASE__URL" not in env

    out = analyst("logout")
    assert out.returncode == 0 and "token revoked" in out.stdout, out.stderr
    after = analyst("actions", "list")
    assert after.returncode == 9 and "no credentials" in after.stderr
