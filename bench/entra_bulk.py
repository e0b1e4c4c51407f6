"""Benchmark: bulk `entra.suspend_user` on many users against the Graph emulator, throttled at a
fixed request budget.

The emulator runs in its own process (its own core) over HTTPS, every Graph request taking
--latency-ms. Its budget is a token bucket of --budget per second (burst: one second's worth) on
either every HTTP request (`--scope requests`: a `$batch` counts once, like a per-request gateway
limit) or on every directory write (`--scope writes`: each write inside a `$batch` counts, as Graph
counts its identity limits). Modes, each on a fresh tenant:
  batched   the connector driven as the engine drives a batching connector: `perform_batch` on
            groups of `max_batch` (60) users, 32 groups in flight (the engine's default provider
            concurrency), each group's state already read (context.state_before).
  engine    the same plus the engine's own `read_states` per group before `perform_batch`.
  per-user  one `suspend_user` call (one PATCH) per user, 32 in flight: one request per user.
The floor is the least time the budget allows for the requests a mode cannot avoid:
max(0, needed - burst) / budget. By default no rate is configured: the connector learns the budget
from its first 429 and Retry-After and paces its request rate from then on (--client-rate sets the
connector's requests_per_second, which it never exceeds). Prints one JSON row per run and appends
it to --results.

    .venv/bin/python bench/entra_bulk.py --users 5000 --budget 50 --scope requests --mode all
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from clampdown.connectors.entra import EntraConnector, EntraSettings
from clampdown.model import Account, AccountState, ActionContext
from clampdown_lab.graph_emulator.app import ADMIN_KEY_HEADER
from clampdown_lab.graph_emulator.server import STATE_FILE
from clampdown_lab.graph_emulator.tenant import ALL_ROLES, AppRecord, Tenant, UserRecord, object_id
from clampdown_lab.graph_emulator.throttling import BucketPolicy, ThrottleConfig
from clampdown_lab.graph_emulator.tls import write_tls_files

CLIENT_ID = object_id("app", "bench")
SECRET = "bench-secret-0123456789abcdefghijklmnopq"
ADMIN_KEY = "bench-admin-key"
ENGINE_CONCURRENCY = 32  # EngineSettings.default_provider_concurrency
BATCH = 20  # Graph's $batch limit
RISK_BATCH = 60  # userIds per confirmCompromised


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(home: Path, users: int, throttle: ThrottleConfig) -> list[Account]:
    tenant = Tenant()
    tenant.apps[CLIENT_ID] = AppRecord(CLIENT_ID, "bench", list(ALL_ROLES), secrets=[SECRET])
    accounts = []
    for n in range(users):
        upn = f"user{n:05d}@{tenant.domain}"
        user = tenant.add_user(UserRecord(id=object_id("user", upn), userPrincipalName=upn, displayName=upn))
        accounts.append(Account(provider="entra", id=user.id, name=upn))
    tenant.save(home / STATE_FILE)
    (home / "throttle.json").write_text(throttle.model_dump_json(), encoding="utf-8")
    (home / "admin-key").write_text(ADMIN_KEY, encoding="utf-8")
    write_tls_files(home / "tls")
    return accounts


def start_emulator(home: Path, latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "clampdown_lab.graph_emulator",
        "--state",
        str(home),
        "--port",
        str(port),
        "--admin-key-file",
        str(home / "admin-key"),
        "--throttle",
        str(home / "throttle.json"),
        "--latency-ms",
        str(latency_ms),
    ]
    log = (home / "emulator.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=log)
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if admin(home, url).get("/_emulator/health").status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError((home / "emulator.log").read_text())


def admin(home: Path, url: str) -> httpx.Client:
    verify = ssl.create_default_context(cafile=str(home / "tls" / "ca.pem"))
    return httpx.Client(base_url=url, verify=verify, headers={ADMIN_KEY_HEADER: ADMIN_KEY}, timeout=60)


async def run_mode(mode: str, action: str, connector: EntraConnector, accounts: list[Account]) -> list[Any]:
    # The state the engine would have read: enabled, and no risk.
    enabled = AccountState(
        enabled=True,
        status="enabled",
        values={"accountEnabled": True, "riskLevel": "none", "riskState": "none"},
    )
    limit = asyncio.Semaphore(ENGINE_CONCURRENCY)

    def context(n: int, state: AccountState | None) -> ActionContext:
        return ActionContext(action_id=n, reason="bench", requested_by="bench", state_before=state)

    async def group(start: int) -> list[Any]:
        chunk = accounts[start : start + connector.max_batch]
        async with limit:
            if mode == "engine":
                states = await connector.read_states(chunk)
                pairs = [
                    (a, context(start + i, s))
                    for i, (a, s) in enumerate(zip(chunk, states, strict=True))
                    if isinstance(s, AccountState)
                ]
            else:
                pairs = [(a, context(start + i, enabled)) for i, a in enumerate(chunk)]
            return await connector.perform_batch(action, pairs)

    async def one(n: int) -> Any:
        async with limit:
            try:
                return await getattr(connector, action)(accounts[n], context(n, enabled))
            except Exception as exc:
                return exc

    if mode == "per-user":
        return list(await asyncio.gather(*(one(n) for n in range(len(accounts)))))
    groups = await asyncio.gather(*(group(s) for s in range(0, len(accounts), connector.max_batch)))
    return [r for g in groups for r in g]


def floor_seconds(mode: str, action: str, scope: str, users: int, budget: float) -> tuple[int, float]:
    """(requests the budget must admit, least seconds to admit them)."""
    if action == "mark_compromised":
        # Identity Protection: about 1 request per second per tenant, up to 60 userIds each.
        needed = users if mode == "per-user" else -(-users // RISK_BATCH)
        return needed, float(needed - 1)
    if scope == "writes" or mode == "per-user":
        needed = users
    else:
        batches = -(-users // BATCH)
        needed = batches if mode == "batched" else 2 * batches  # engine: one read $batch per write $batch
    return needed, max(0.0, needed - budget) / budget


async def bench(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    policy = BucketPolicy(rate=args.budget, burst=args.budget)
    throttle = (
        ThrottleConfig(requests=policy)
        if args.scope == "requests"
        else ThrottleConfig(directory_writes=policy)
    )
    if args.action == "mark_compromised":
        throttle.identity_protection = BucketPolicy(rate=1, burst=1, retry_after=False)
    with tempfile.TemporaryDirectory(prefix="entra-bench-") as workdir:
        home = Path(workdir)
        accounts = prepare(home, args.users, throttle)
        process, url = start_emulator(home, args.latency_ms)
        try:
            settings = EntraSettings(
                tenant_id=Tenant().tenant_id,
                client_id=CLIENT_ID,
                client_secret=SECRET,
                authority_host=url,
                graph_url=f"{url}/v1.0",
                ca_bundle=home / "tls" / "ca.pem",
                instance_discovery=False,
                max_connections=ENGINE_CONCURRENCY,
                requests_per_second=args.client_rate,
            )
            connector = EntraConnector(settings)
            await connector.tokens.token()  # the token is not part of the bulk
            started = time.monotonic()
            results = await run_mode(mode, args.action, connector, accounts)
            elapsed = time.monotonic() - started
            stats = connector.graph.stats
            pacer = connector.graph.pacer
            await connector.aclose()
            with admin(home, url) as client:
                counters = client.get("/_emulator/counters").json()
                users = {u["id"]: u for u in client.get("/_emulator/users").json()}
                risky = {r["id"]: r for r in client.get("/_emulator/risky").json()}
        finally:
            process.terminate()
            process.wait(timeout=30)
    failed = [r for r in results if isinstance(r, Exception)]
    if args.action == "mark_compromised":
        not_done = sum(1 for a in accounts if risky.get(a.id, {}).get("riskState") != "confirmedCompromised")
    else:
        not_done = sum(1 for a in accounts if users[a.id]["accountEnabled"])
    needed, floor = floor_seconds(mode, args.action, args.scope, args.users, args.budget)
    return {
        "bench": "entra_bulk",
        "action": args.action,
        "mode": mode,
        "users": args.users,
        "budget_per_s": args.budget,
        "budget_scope": args.scope,
        "latency_ms": args.latency_ms,
        "client_rate": args.client_rate,
        "seconds": round(elapsed, 2),
        "floor_seconds": round(floor, 2),
        "over_floor": round(elapsed / floor, 2) if floor else None,
        "http_requests": stats.http_requests,
        "batch_requests": stats.batch_requests,
        "min_requests": needed,
        "throttled_429": counters["throttled"],
        # Congested moments the pacer learned from (the first included), and its pace at the end.
        "lessons": pacer.requests.lessons + pacer.items.lessons,
        "paced_per_s": round(pacer.requests.rate, 1) if pacer.requests.rate else None,
        "inner_requests": counters["inner_requests"],
        "failed": len(failed),
        "first_failure": str(failed[0])[:200] if failed else None,
        "not_done_in_emulator": not_done,
        "users_per_s": round(args.users / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--budget", type=float, default=50.0, help="requests (or writes) per second")
    parser.add_argument("--scope", choices=("requests", "writes"), default="requests")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--client-rate",
        type=float,
        default=None,
        help="the connector's requests_per_second (a ceiling); default: none, learned from 429s",
    )
    parser.add_argument("--action", choices=("suspend_user", "mark_compromised"), default="suspend_user")
    parser.add_argument("--mode", choices=("batched", "engine", "per-user", "all"), default="all")
    parser.add_argument(
        "--results", type=Path, default=Path(__file__).parent / "results" / "entra_bulk.jsonl"
    )
    args = parser.parse_args()
    modes = ("batched", "engine", "per-user") if args.mode == "all" else (args.mode,)
    for mode in modes:
        row = asyncio.run(bench(args, mode))
        print(json.dumps(row), flush=True)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
