"""Benchmark: people search latency across the three lab directories (issue 19).

Against a running lab (Samba AD DC, Graph and Okta emulators; `clampdown lab up` or a lab dir of
one's own whose emulators run this checkout's code), through the connectors the lab's
clampdown.toml configures, in one process:

- per directory: `search_users(fragment, 11)` of each connector alone (AD: anr and substring
  filters over LDAPS; Entra: Graph `$search` with ConsistencyLevel; Okta: `search` with co);
- merged: `search_people` (the service every face calls) asking all three at once, merging by
  strong anchors and ranking; the kept answers are dropped before each run so every run asks
  every directory (the type-ahead's repeated asks would be faster).

Fragments rotate over prefixes and inner parts of the demo people's names. With `--latency-ms`
the Graph and Okta emulators add that much to every request (a cloud round trip; Samba answers as
fast as it does). Median and p95 per series, one JSON row each into bench/results/search_latency.jsonl.

    .venv/bin/python bench/search_latency.py --lab-dir /tmp/my-lab --runs 200 [--latency-ms 0,100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from clampdown.auth.principal import Principal
from clampdown.config import load_settings
from clampdown.connectors.base import UserSearcher
from clampdown.connectors.registry import build_connectors
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.people_search import forget_answers, search_people

FRAGMENTS = ["mart", "alice", "nguy", "carol", "okaf", "kowal", "frank", "hadd", "schm", "artin", "ice mar"]
RESULTS = Path(__file__).parent / "results" / "search_latency.jsonl"


def set_latency(settings: Any, lab_dir: Path, seconds: float) -> None:
    """Every Graph and Okta emulator request takes `seconds` from now on."""
    okta = str(settings.providers["okta"]["org_url"])
    httpx.put(f"{okta}/_emulator/latency", json={"seconds": seconds}, timeout=10).raise_for_status()
    graph = str(settings.providers["entra"]["graph_url"]).rsplit("/v1.0", 1)[0]
    key = (lab_dir / "entra" / "admin-key").read_text().strip()
    httpx.put(
        f"{graph}/_emulator/latency", json={"seconds": seconds}, timeout=10,
        headers={"x-emulator-admin-key": key}, verify=str(lab_dir / "entra" / "tls" / "ca.pem"),
    ).raise_for_status()  # fmt: skip


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


async def timed(runs: int, one: Callable[[str], Awaitable[object]]) -> list[float]:
    samples = []
    for n in range(runs):
        fragment = FRAGMENTS[n % len(FRAGMENTS)]
        started = time.perf_counter()
        await one(fragment)
        samples.append(time.perf_counter() - started)
    return samples


async def bench(lab_dir: Path, runs: int, latencies: list[float]) -> list[dict[str, Any]]:
    settings = load_settings(lab_dir / "clampdown.toml")
    connectors = build_connectors(settings)
    caller = Principal.from_roles("bench", frozenset({GLOBAL_ADMINISTRATOR}), {})
    rows = []
    try:
        for name, connector in connectors.items():  # warm: TLS, binds, tokens
            assert isinstance(connector, UserSearcher), name
            await connector.search_users("mart", 11)
        for latency in latencies:
            set_latency(settings, lab_dir, latency / 1000)
            for name, connector in connectors.items():
                searcher: UserSearcher = connector  # type: ignore[assignment]
                samples = await timed(runs, lambda text, s=searcher: s.search_users(text, 11))
                rows.append(
                    {"series": f"directory {name}", "latency_ms": latency, "runs": runs, **summary(samples)}
                )

            async def merged(text: str) -> None:
                forget_answers()
                found = await search_people(connectors, text, caller, wait=30)
                assert found.complete and found.people, (text, found)

            samples = await timed(runs, merged)
            rows.append(
                {"series": "merged (search_people)", "latency_ms": latency, "runs": runs, **summary(samples)}
            )
        set_latency(settings, lab_dir, 0)
    finally:
        for connector in connectors.values():
            await connector.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab-dir", type=Path, default=Path(".lab"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency-ms", default="0", help="comma-separated emulator latencies")
    args = parser.parse_args()
    latencies = [float(x) for x in args.latency_ms.split(",")]
    rows = asyncio.run(bench(args.lab_dir.resolve(), args.runs, latencies))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with RESULTS.open("a", encoding="utf-8") as out:
        for row in rows:
            print(json.dumps(row))
            out.write(json.dumps({"at": stamp, **row}) + "\n")


if __name__ == "__main__":
    main()
