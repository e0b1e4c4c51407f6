"""POST /api/v1/actions under concurrent clients: requests per second and p50/p99 latency.

Starts a real `clampdown serve` (embedded worker off, so only the API and the database are
measured) with the no-op memory connector, then drives it with wrk (--clients connections for
--seconds; each request a new target). wrk runs on the same 2 cores as the server.

    .venv/bin/python bench/api_requests.py --clients 32 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
import tomli_w

from clampdown.auth.service import AuthService
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.store.auth import AuthStore

PG_ADMIN = os.environ.get("CLAMPDOWN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
NOOP = {"connector": "clampdown.connectors.memory:MemoryConnector", "provider": "okta"}


async def prepare(url: str) -> str:
    engine = create_engine(url)
    await upgrade(engine)
    auth = AuthService(AuthStore(engine))
    await auth.create_user("bench", frozenset({GLOBAL_ADMINISTRATOR}), None)
    token = (await auth.create_token("bench", "bench", None)).token
    await engine.dispose()
    return token


WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local target = 'u' .. counter .. '-' .. math.random(1, 1e9)
  local body = '{"type":"okta.suspend_user","target":"' .. target .. '","reason":"bench"}'
  return wrk.format("POST", "/api/v1/actions",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer TOKEN"}, body)
end
"""


def wrk(base: str, token: str, clients: int, seconds: int, workdir: Path) -> str:
    """Run wrk (Debian package `wrk`) and return its report."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.replace("TOKEN", token))
    args = ["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), base]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def parse(report: str) -> str:
    """requests/s | p50 | p99 | non-2xx, from wrk's report."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report)
    p50 = re.search(r"50%\s+([\d.]+\w+)", report)
    p99 = re.search(r"99%\s+([\d.]+\w+)", report)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    assert rate and p50 and p99, report
    return f"{float(rate.group(1)):,.0f} | {p50.group(1)} | {p99.group(1)} | {bad.group(1) if bad else 0}"


def run(url: str, clients: int, seconds: int, workdir: Path) -> str:
    token = asyncio.run(prepare(url))
    config = workdir / "bench.toml"
    config.write_text(
        tomli_w.dumps(
            {"database": {"url": url}, "server": {"embedded_worker": False}, "providers": {"okta": NOOP}}
        )
    )
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clampdown", "serve", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{base}/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        wrk(base, token, clients, 2, workdir)  # warm-up
        return parse(wrk(base, token, clients, seconds, workdir))
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    print("| database | clients | seconds | requests/s | p50 | p99 | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        row = run(f"sqlite:///{tmp}/bench.db", args.clients, args.seconds, Path(tmp))
        print(f"| SQLite | {args.clients} | {args.seconds} | {row} |", flush=True)
    name = f"clampdown_apibench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
            row = run(url, args.clients, args.seconds, Path(tmp))
            print(f"| PostgreSQL | {args.clients} | {args.seconds} | {row} |", flush=True)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
