"""How long the `clampdown` command takes, as a whole process: `--help`, `catalog` and `actions list`,
opening the database (SQLite) and, after issue 18, asking a running server over the REST API
(`--server`). Wall time of each process from start to exit, median and p95 of N runs, the cases
interleaved round by round so that a busy moment of the machine falls on every case alike.

"Before" is the code of another checkout run by the same interpreter (PYTHONPATH): make one with
`git worktree add /tmp/cli-before <commit>`. Each checkout gets its own SQLite database, migrated
and set up by its own code (an admin, a token, 20 queued Okta actions on the memory directory);
the server is started from this checkout only.

    flock /tmp/clampdown-bench.lock .venv/bin/python bench/cli_startup.py --before /tmp/cli-before/src
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import tomli_w

HERE = Path(__file__).resolve().parents[1] / "src"
RESULTS = Path(__file__).parent / "results" / "cli_startup.jsonl"
CASES = (("--help",), ("catalog",), ("actions", "list"))


@dataclass
class Setup:
    """One checkout's code, its configuration and its admin's token."""

    name: str
    src: Path
    config: Path
    token: str = ""

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(self.src), "CLAMPDOWN_CONFIG": str(self.config)}
        env.update(CLAMPDOWN_TOKEN=self.token, COLUMNS="120")
        env.pop("CLAMPDOWN_SERVER", None)
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "clampdown", *args], env=self.env(), capture_output=True, text=True
        )
        if check and done.returncode != 0:
            raise SystemExit(f"{self.name}: clampdown {' '.join(args)} failed: {done.stderr}")
        return done


def prepare(name: str, src: Path, folder: Path, actions: int) -> Setup:
    folder.mkdir()
    data = {
        "database": {"url": f"sqlite:///{folder / 'clampdown.db'}"},
        "providers": {
            "okta": {
                "connector": "clampdown.connectors.memory:MemoryConnector",
                "provider": "okta",
                "state_path": str(folder / "okta.db"),
            }
        },
    }
    config = folder / "clampdown.toml"
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    setup = Setup(name, src, config)
    setup.run("db", "upgrade")
    setup.run("users", "create", "admin", "--role", "Global Administrator")
    setup.token = setup.run("tokens", "create", "--user", "admin").stdout.strip()
    for i in range(actions):
        setup.run("act", "okta.suspend_user", f"user{i}", "-r", f"INC-{i}")
    return setup


def start_server(setup: Setup) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "clampdown", "serve", "--port", str(port)],
        env=setup.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("clampdown serve did not start")


def timed(setup: Setup, args: tuple[str, ...]) -> float:
    """Seconds from the process's start to its exit."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "clampdown", *args],
        env=setup.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{setup.name}: clampdown {' '.join(args)} failed: {done.stderr}")
    return elapsed


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, help="src/ of the checkout to compare with")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--actions", type=int, default=20, help="actions in each database")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        after = prepare("after", HERE, Path(tmp) / "after", opts.actions)
        before = prepare("before", opts.before, Path(tmp) / "before", opts.actions) if opts.before else None
        proc, base = start_server(after)
        try:
            cases: list[tuple[str, Setup, tuple[str, ...]]] = [("floor", after, ("-c", "pass"))]
            for args in CASES:
                if before:
                    cases.append(("before", before, args))
                cases.append(("after", after, args))
                if args != ("--help",):
                    cases.append(("after --server", after, ("--server", base, *args)))
            times: dict[int, list[float]] = {i: [] for i in range(len(cases))}
            for _, setup, args in cases[1:]:  # warm: bytecode compiled, files cached
                timed(setup, args)
            for _ in range(opts.runs):
                for i, (_, setup, args) in enumerate(cases):
                    if args[0] == "-c":  # the interpreter alone: the floor every case stands on
                        started = time.perf_counter()
                        subprocess.run([sys.executable, "-c", "pass"], check=True)
                        times[i].append(time.perf_counter() - started)
                    else:
                        times[i].append(timed(setup, args))
        finally:
            proc.terminate()
            proc.wait(15)

    rows = []
    for i, (variant, _, args) in enumerate(cases):
        shown = " ".join(a for a in args if not a.startswith("http")).replace("--server", "").strip()
        row = {
            "variant": variant,
            "command": "python -c pass" if args[0] == "-c" else f"clampdown {shown}",
            "runs": opts.runs,
            "median_s": round(statistics.median(times[i]), 3),
            "p95_s": round(p95(times[i]), 3),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        rows.append(row)
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    print("| command | variant | median (s) | p95 (s) |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['command']} | {row['variant']} | {row['median_s']:.3f} | {row['p95_s']:.3f} |")


if __name__ == "__main__":
    main()
