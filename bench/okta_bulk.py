"""Benchmark: bulk `okta.suspend_user` against the Okta emulator under an org rate limit.

Three ways over the same emulator (a separate process; Okta's buckets limited to --limit
requests per 60 s window, except single-user reads at 5/3 of it as in Okta's table (1000 vs
600); each request taking --latency-ms inside the "org"):
  paced   Clampdown's connector driven as the engine drives it: asyncio.gather over
          `connector.suspend_user`, bounded by the engine's default provider concurrency (32);
          the connector's shared pacer keeps the requests under the limit.
  engine  the same, with every step the engine's worker takes per action: resolve the login,
          read the state (kept for undo), then suspend (3 requests, 2 of them reads).
  naive   a sequential loop of POST .../lifecycle/suspend that, on a 429, sleeps one second and
          tries again (what a quick script does).
Each run seeds fresh users. Prints one JSON result row per run (and appends it to --results).

    .venv/bin/python bench/okta_bulk.py --users 1000 --limit 600 [--latency-ms 100] [--mode all]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from clampdown.connectors.okta import OktaConnector, OktaSettings
from clampdown.errors import ProviderError
from clampdown.model import Account, ActionContext
from clampdown_lab.okta_emulator.ratelimit import DEFAULT_LIMITS

TOKEN = "00bench-okta-token"
ENGINE_CONCURRENCY = 32  # EngineSettings.default_provider_concurrency


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(workdir: Path, limit: int, latency: float) -> tuple[subprocess.Popen[bytes], str]:
    """The emulator in its own process (its own core), every rate-limit bucket at `limit`/minute."""
    settings = {
        "api_tokens": {TOKEN: "bench@lab.example.test"},
        "limits": {**dict.fromkeys(DEFAULT_LIMITS, limit), "users.get": math.ceil(limit * 5 / 3)},
        "concurrency": 75,
        "latency": latency,
    }
    path = workdir / "settings.json"
    path.write_text(json.dumps(settings), encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "clampdown_lab.okta_emulator", "--settings", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/_emulator/stats", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.1)


def seed(url: str, prefix: str, count: int) -> list[Account]:
    """Fresh ACTIVE users, and a fresh rate-limit window for the run."""
    users = [
        {"login": f"{prefix}{i:05d}@lab.example.test", "firstName": "Bench", "lastName": str(i)}
        for i in range(count)
    ]
    ids = httpx.post(f"{url}/_emulator/users", json={"users": users}, timeout=60).json()["ids"]
    httpx.delete(f"{url}/_emulator/stats", timeout=10)
    return [Account(provider="okta", id=ids[u["login"]], name=u["login"]) for u in users]


def emulator_stats(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/_emulator/stats", timeout=10).json()  # type: ignore[no-any-return]


async def paced(
    url: str, accounts: list[Account], in_flight: int, engine_steps: bool = False
) -> dict[str, Any]:
    """As the engine would: many concurrent actions on one connector instance."""
    settings = OktaSettings(org_url=url, api_token=TOKEN, clear_sessions=False, max_concurrency=in_flight)
    connector = OktaConnector(settings)
    gate = asyncio.Semaphore(ENGINE_CONCURRENCY)
    failed = 0

    async def one(index: int, account: Account) -> None:
        nonlocal failed
        async with gate:
            try:
                before = None
                if engine_steps:
                    account = await connector.resolve_user(account.name)
                    before = await connector.read_state(account)
                await connector.suspend_user(
                    account, ActionContext(index, "bench", "bench", state_before=before)
                )
            except ProviderError:
                failed += 1

    started = time.monotonic()
    await asyncio.gather(*(one(i, a) for i, a in enumerate(accounts)))
    elapsed = time.monotonic() - started
    stats = connector.client.stats
    await connector.aclose()
    return {
        "elapsed_s": elapsed,
        "failed": failed,
        "client_429": stats.throttled,
        "client_requests": stats.requests,
    }


async def naive(url: str, accounts: list[Account]) -> dict[str, Any]:
    """A sequential loop that retries on 429 after a one-second sleep."""
    failed = 0
    throttled = 0
    headers = {"Authorization": f"SSWS {TOKEN}", "Accept": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        started = time.monotonic()
        for account in accounts:
            while True:
                response = await client.post(f"/api/v1/users/{account.id}/lifecycle/suspend")
                if response.status_code != 429:
                    break
                throttled += 1
                await asyncio.sleep(1.0)
            failed += response.status_code != 200
        elapsed = time.monotonic() - started
    return {"elapsed_s": elapsed, "failed": failed, "client_429": throttled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=600, help="requests per minute, every bucket")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="time each request takes in the org")
    parser.add_argument("--mode", choices=["paced", "engine", "naive", "all"], default="all")
    parser.add_argument("--in-flight", type=int, default=16, help="the connector's max_concurrency")
    parser.add_argument("--results", type=Path, help="a JSON-lines file to append the rows to")
    args = parser.parse_args()
    modes = ["paced", "engine", "naive"] if args.mode == "all" else [args.mode]
    with tempfile.TemporaryDirectory() as workdir:
        process, url = start_emulator(Path(workdir), args.limit, args.latency_ms / 1000)
        try:
            for mode in modes:
                accounts = seed(url, f"{mode}-", args.users)
                before = emulator_stats(url)
                if mode == "naive":
                    result = asyncio.run(naive(url, accounts))
                else:
                    result = asyncio.run(paced(url, accounts, args.in_flight, engine_steps=mode == "engine"))
                stats = emulator_stats(url)
                windows = math.ceil(args.users / args.limit)
                row = {
                    "bench": "okta_bulk",
                    "mode": mode,
                    "users": args.users,
                    "limit_per_min": args.limit,
                    "users_get_limit_per_min": math.ceil(args.limit * 5 / 3),
                    "latency_ms": args.latency_ms,
                    "in_flight": args.in_flight,
                    **{k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()},
                    "floor_n_over_limit_s": round(args.users / args.limit * 60, 1),
                    "floor_fixed_windows_s": (windows - 1) * 60,
                    "emulator_429": stats["by_status"].get("429", 0),
                    "suspended": stats["users_by_status"].get("SUSPENDED", 0)
                    - before["users_by_status"].get("SUSPENDED", 0),
                    "suspend_events": stats["log_events"] - before["log_events"],
                    "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }
                print(json.dumps(row), flush=True)
                if args.results:
                    with args.results.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(row) + "\n")
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
