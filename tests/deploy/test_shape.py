"""The production shape on one machine, as docs/deploy.md sets it up: PostgreSQL, `clampdown serve`
with its own TLS certificate on loopback, and two `clampdown worker` processes, each started from
the command line of its systemd unit. An action requested over HTTPS is performed by one of the
workers in the lab's Samba AD DC (read back there), and every process stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import ldap3
import psycopg
import pytest
import tomli_w

from clampdown_lab.graph_emulator.tls import write_tls_files
from clampdown_lab.samba import SambaLab
from tests.ad.ad_checks import ScratchUser
from tests.api.conftest import free_port
from tests.deploy.conftest import unit_command, unit_setting
from tests.waiting import wait_for

UAC_DISABLED = 0x2


class Deployment:
    """The processes of one deployment, stopped (SIGTERM, as systemd does) at the end."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.tmp_path, self.config = tmp_path, config
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self) -> dict[str, str]:
        # The unit's Environment= line, pointed at this test's config file.
        (setting,) = unit_setting("clampdown.service", "Environment")
        assert setting.startswith("CLAMPDOWN_CONFIG=")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAMPDOWN_")}
        return {**env, "CLAMPDOWN_CONFIG": str(self.config)}

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [unit_command("clampdown.service")[0], *args],
            env=self.env(), input=stdin, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, name: str, argv: list[str]) -> None:
        log = (self.tmp_path / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(argv, env=self.env(), stdout=log, stderr=log)

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def stop(self) -> dict[str, int | None]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
        return codes


@pytest.fixture
def deployment(pg_database: str, lab: SambaLab, tmp_path: Path) -> Iterator[tuple[Deployment, str, Path]]:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    ca, cert, key = write_tls_files(tmp_path / "tls")
    port = free_port()
    config = tmp_path / "clampdown.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "database": {"url": pg_database},
                "server": {"host": "127.0.0.1", "port": port, "tls_cert_file": str(cert),
                           "tls_key_file": str(key)},
                "providers": {"ad": lab.provider_config()},
            }
        )
    )  # fmt: skip
    dep = Deployment(tmp_path, config)
    yield dep, f"https://127.0.0.1:{port}", ca
    dep.stop()


def _wait_healthy(base: str, ca: Path, dep: Deployment) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", verify=str(ca)).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"serve did not come up: {dep.log('serve')}")


def test_an_action_completes_through_tls_serve_and_two_workers(
    deployment: tuple[Deployment, str, Path], make_user: Callable[..., ScratchUser], admin: Any
) -> None:
    dep, base, ca = deployment
    assert "database schema is up to date" in dep.cli("db", "upgrade")  # the upgrade step, on purpose
    dep.cli("users", "create", "responder", "--role", "Security Administrator")
    token = dep.cli("tokens", "create", "--user", "responder").strip()
    dep.start("serve", unit_command("clampdown.service"))
    _wait_healthy(base, ca, dep)
    for n in ("1", "2"):
        dep.start(f"worker-{n}", unit_command("clampdown-worker@.service", n))

    # Only HTTPS is served, and its certificate is checked against the CA (no verify=False).
    with pytest.raises(httpx.TransportError):
        httpx.get(base.replace("https://", "http://") + "/healthz")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/healthz")  # the system's CAs do not know the lab CA
    api = httpx.Client(base_url=base, verify=str(ca), headers={"Authorization": f"Bearer {token}"})

    def live_workers() -> list[dict[str, Any]]:
        rows = api.get("/api/v1/workers").json()
        return [w for w in rows if w["live"] and w["kind"] == "standalone"]

    workers = wait_for(lambda: len(live_workers()) == 2 and live_workers(), "two live workers")
    assert {w["pid"] for w in workers} == {dep.procs["worker-1"].pid, dep.procs["worker-2"].pid}

    user = make_user()
    asked = api.post(
        "/api/v1/actions", json={"type": "ad.disable_user", "target": user.upn, "reason": "INC-7 deploy"}
    )
    assert asked.status_code == 202, asked.text
    action_id = asked.json()["id"]
    done = wait_for(
        lambda: (a := api.get(f"/api/v1/actions/{action_id}").json())["status"] in ("completed", "failed")
        and a,
        "the action to end",
    )
    assert done["status"] == "completed", done
    admin.search(user.dn, "(objectClass=user)", ldap3.BASE, attributes=["userAccountControl"])
    assert int(admin.entries[0].userAccountControl.value) & UAC_DISABLED

    # Stopped as systemd stops them: uvicorn ends by re-raising SIGTERM (a clean stop for systemd),
    # the workers exit 0.
    api.close()
    codes = dep.stop()
    assert codes == {"serve": -signal.SIGTERM, "worker-1": 0, "worker-2": 0}, {
        n: dep.log(n)[-2000:] for n in codes
    }
