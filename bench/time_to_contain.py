"""Benchmark: time to contain one person across AD, Entra ID and Okta (the default playbook).

Against the running lab (`clampdown lab up`: Samba AD DC, Graph and Okta emulators), a real
`clampdown serve` on a fresh database contains the same demo person `--runs` times through the
REST API and releases them after each run. Per run, from the server's own timestamps:

- total: the request (the steps' `requested_at`) to the last step's `finished_at`;
- floor: the longest chain of steps (each step's `started_at` to `finished_at`, following
  `after_action_id`): the time the providers and each step's own work took, with no wait
  between one step's end and the next step's claim;
- ratio = total / floor (1.0: no step ever waited to be picked up);
- blocked: the request to the last of the steps after which no sign-in works anywhere and every
  session has ended (`BLOCKING`): what the analyst waits for before the person is out.

Setups: SQLite (the worker embedded in serve) and PostgreSQL (serve plus one `clampdown worker`
process), with the emulators' latency at each of `--latency-ms` (the Graph and Okta emulators
add it to every request; Samba answers as fast as it does). `--cli N` also times N
`clampdown contain PERSON --wait` from the shell at 0 ms, as an analyst runs it (start of the
process to its exit), opening the database and with `--server`. `--source DIR` runs serve and
the worker from another checkout's `src` (the "before" numbers: `git worktree add DIR <commit>`).

Each run is released, then the next waits `--pause` seconds: Microsoft Graph allows Identity
Protection one request per second per tenant, and the connector spaces them so (its
`identity_protection_interval_seconds`); back to back, each containment's `entra.mark_compromised`
would wait for the previous release's dismissal, which no analyst's containment does.

    .venv/bin/python bench/time_to_contain.py --runs 50 [--lab-dir .lab] [--latency-ms 0,100]
        [--databases sqlite,postgresql] [--person alice.martin] [--source /tmp/before]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import tomli_w

from clampdown.auth.service import AuthService
from clampdown.db.database import create_engine
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.store.auth import AuthStore

PG_ADMIN = os.environ.get("CLAMPDOWN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PG_DATABASE = "bench_time_to_contain"
CLAMPDOWN = [sys.executable, "-m", "clampdown"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_postgres() -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DATABASE


async def admin_token(url: str) -> str:
    engine = create_engine(url)
    try:
        auth = AuthService(AuthStore(engine))
        await auth.create_user("bench", frozenset({GLOBAL_ADMINISTRATOR}), None)
        return (await auth.create_token("bench", "bench", None)).token
    finally:
        await engine.dispose()


def set_latency(config: dict[str, Any], lab_dir: Path, seconds: float) -> None:
    """Every Graph and Okta emulator request takes `seconds` from now on."""
    okta = config["providers"]["okta"]["org_url"]
    httpx.put(f"{okta}/_emulator/latency", json={"seconds": seconds}, timeout=10).raise_for_status()
    entra = config["providers"]["entra"]
    graph = entra["graph_url"].rsplit("/v1.0", 1)[0]
    key = (lab_dir / "entra" / "admin-key").read_text().strip()
    httpx.put(
        f"{graph}/_emulator/latency", json={"seconds": seconds}, timeout=10,
        headers={"x-emulator-admin-key": key}, verify=str(lab_dir / "entra" / "tls" / "ca.pem"),
    ).raise_for_status()  # fmt: skip


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


# The steps after which no sign-in works anywhere and every session has ended.
BLOCKING = {"ad.disable_user", "entra.suspend_user", "entra.revoke_sessions", "okta.suspend_user",
            "okta.clear_sessions"}  # fmt: skip


def measure(steps: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(total, floor, blocked) in seconds from the steps' server timestamps."""
    by_id = {s["id"]: s for s in steps}
    requested = min(_at(s["requested_at"]) for s in steps)
    finished = max(_at(s["finished_at"]) for s in steps)
    blocked = max(_at(s["finished_at"]) for s in steps if s["type"] in BLOCKING)
    chain: dict[int, float] = {}

    def path(step: dict[str, Any]) -> float:
        if step["id"] not in chain:
            own = (_at(step["finished_at"]) - _at(step["started_at"])).total_seconds()
            before = by_id.get(step.get("after_action_id") or 0)
            chain[step["id"]] = own + (path(before) if before else 0.0)
        return chain[step["id"]]

    floor = max(path(s) for s in steps)
    return (finished - requested).total_seconds(), floor, (blocked - requested).total_seconds()


class Served:
    """`clampdown serve` (and, on PostgreSQL, one worker process) on a fresh database."""

    def __init__(self, lab_config: dict[str, Any], database: str, workdir: Path, source: Path | None) -> None:
        self.port = free_port()
        config = json.loads(json.dumps(lab_config))
        url = fresh_postgres() if database == "postgresql" else f"sqlite:///{workdir / 'bench.db'}"
        config["database"] = {"url": url}
        config["server"] = {**config.get("server", {}), "port": self.port}
        config.pop("sso", None)
        self.path = workdir / f"clampdown-{database}.toml"
        self.path.write_text(tomli_w.dumps(config))
        self.env = {**os.environ, "CLAMPDOWN_CONFIG": str(self.path), "CLAMPDOWN_LOG_LEVEL": "warning"}
        if source is not None:
            self.env["PYTHONPATH"] = str(source / "src")
        subprocess.run([*CLAMPDOWN, "db", "upgrade"], env=self.env, check=True, capture_output=True)
        self.token = asyncio.run(admin_token(url))
        self.processes = [subprocess.Popen([*CLAMPDOWN, "serve"], env=self.env)]
        if database == "postgresql":
            self.processes.append(subprocess.Popen([*CLAMPDOWN, "worker"], env=self.env))
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.client.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("clampdown serve did not start")
            time.sleep(0.1)

    def run_playbook(self, name: str, person: str) -> dict[str, Any]:
        answer = self.client.post(f"/api/v1/playbooks/{name}/run", json={"target": person, "reason": "bench"})
        answer.raise_for_status()
        run: dict[str, Any] = answer.json()
        return run

    def wait(self, ids: list[int], timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            steps = [self.client.get(f"/api/v1/actions/{i}").json() for i in ids]
            if all(s["status"] in ("completed", "failed", "cancelled") for s in steps):
                return steps
            if time.monotonic() > deadline:
                raise RuntimeError(f"not done in {timeout} s: {[(s['id'], s['status']) for s in steps]}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.client.close()
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def bench(served: Served, person: str, runs: int, pause: float) -> dict[str, Any]:
    totals: list[float] = []
    floors: list[float] = []
    blocked: list[float] = []
    failures, steps_per_run = 0, 0
    for n in range(runs + 1):  # the first run warms connections and caches: not counted
        run = served.run_playbook("contain", person)
        steps = served.wait([a["id"] for a in run["actions"]])
        steps_per_run = len(steps)
        if any(s["status"] != "completed" for s in steps):
            failures += 1
            print("  not all completed:", [(s["type"], s["status"], s.get("error_message")) for s in steps])
        if n:
            total, floor, blocking = measure(steps)
            totals.append(total)
            floors.append(floor)
            blocked.append(blocking)
        release = served.run_playbook("release", person)
        served.wait([a["id"] for a in release["actions"]])
        time.sleep(pause)
    ratios = [t / f for t, f in zip(totals, floors, strict=True)]
    return {
        "runs": runs, "steps": steps_per_run, "failed_runs": failures,
        "p50_s": round(statistics.median(totals), 3), "p95_s": round(percentile(totals, 0.95), 3),
        "floor_p50_s": round(statistics.median(floors), 3),
        "blocked_p50_s": round(statistics.median(blocked), 3),
        "blocked_p95_s": round(percentile(blocked, 0.95), 3),
        "ratio_p50": round(statistics.median(ratios), 2), "ratio_p95": round(percentile(ratios, 0.95), 2),
    }  # fmt: skip


def cli_runs(served: Served, person: str, runs: int, pause: float, remote: bool) -> dict[str, Any]:
    """Wall time of `clampdown contain PERSON --wait` as an analyst runs it (process start included):
    opening the database itself, and (`remote`) asking the server over its API with --server."""
    env = {**served.env, "CLAMPDOWN_TOKEN": served.token}
    modes = {"cli": []} if not remote else {"cli": [], "cli_server": ["--server", served.base]}
    walls: dict[str, list[float]] = {mode: [] for mode in modes}
    for n in range(runs + 1):
        for mode, options in modes.items():
            started = time.perf_counter()
            subprocess.run([*CLAMPDOWN, *options, "contain", person, "-r", "bench", "--wait"], env=env,
                           check=True, capture_output=True)  # fmt: skip
            if n:
                walls[mode].append(time.perf_counter() - started)
            subprocess.run([*CLAMPDOWN, *options, "release", person, "-r", "bench", "--wait"], env=env,
                           check=True, capture_output=True)  # fmt: skip
            time.sleep(pause)
    out: dict[str, Any] = {"cli_runs": runs}
    for mode, values in walls.items():
        out[f"{mode}_p50_s"] = round(statistics.median(values), 3)
        out[f"{mode}_p95_s"] = round(percentile(values, 0.95), 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--lab-dir", type=Path, default=Path(".lab"))
    parser.add_argument("--latency-ms", default="0,100")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--person", default="alice.martin")
    parser.add_argument("--source", type=Path, help="run serve and the worker from this checkout")
    parser.add_argument("--cli", type=int, default=0, help="also time N `clampdown contain --wait` (0 ms)")
    parser.add_argument(
        "--pause", type=float, default=1.5,
        help="seconds between a release and the next containment (Identity Protection: 1 request/s)",
    )  # fmt: skip
    args = parser.parse_args()
    lab = json.loads((args.lab_dir / "lab.json").read_text())
    lab_config = tomllib.loads((args.lab_dir / "clampdown.toml").read_text())
    person = next(p["upn"] for p in lab["people"] if p["username"] == args.person)
    rows = []
    try:
        for database in args.databases.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                served = Served(lab_config, database, Path(tmp), args.source)
                try:
                    for latency in (float(x) for x in args.latency_ms.split(",")):
                        set_latency(lab_config, args.lab_dir, latency / 1000)
                        result = bench(served, person, args.runs, args.pause)
                        if args.cli and not latency:
                            remote = args.source is None  # --server is new: the CLI before has none
                            result.update(cli_runs(served, person, args.cli, args.pause, remote))
                        row = {"database": database, "latency_ms": latency, **result}
                        print(json.dumps(row), flush=True)
                        rows.append(row)
                finally:
                    served.stop()
    finally:
        set_latency(lab_config, args.lab_dir, 0.0)
    print("| database | emulator latency | steps | p50 | p95 | floor (p50) | ratio p50 | ratio p95 "
          "| blocked p50 | blocked p95 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [
            r["database"], f"{r['latency_ms']:g} ms", r["steps"], f"{r['p50_s']:.3f} s",
            f"{r['p95_s']:.3f} s", f"{r['floor_p50_s']:.3f} s", f"{r['ratio_p50']:.2f}",
            f"{r['ratio_p95']:.2f}", f"{r['blocked_p50_s']:.3f} s", f"{r['blocked_p95_s']:.3f} s",
        ]  # fmt: skip
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
