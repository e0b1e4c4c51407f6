"""Hunting query speed: summarize-by-account hunts over --events generated logon events.

Fills IdentityLogonEvents in a fresh event store with --events rows (--users accounts, 30 days,
a fifth of them failures, from --ips addresses), then times each hunt through the real query path
(read-only transaction, row and time limits, JSON-safe rows): the first run after opening the file,
then the median of --repeat runs. Prints one JSON row per hunt and appends them to --results.

    .venv/bin/python bench/hunting_query.py --events 10000000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from clampdown.hunting.query import run_query
from clampdown.hunting.settings import HuntingSettings
from clampdown.hunting.store import EventStore

HUNTS = {
    "kql_failures_by_account": """IdentityLogonEvents
| where ActionType == "LogonFailed"
| summarize Failures = count() by AccountName
| top 20 by Failures""",
    "sql_failures_by_account": """SELECT AccountName, count(*) AS Failures FROM IdentityLogonEvents
WHERE ActionType = 'LogonFailed' GROUP BY AccountName ORDER BY Failures DESC LIMIT 20""",
    "kql_logons_by_account_all": """IdentityLogonEvents
| summarize Logons = count(), Failures = countif(ActionType == "LogonFailed"), Sources = dcount(IPAddress)
    by AccountName""",
    "kql_spray_by_ip": """IdentityLogonEvents
| where ActionType == "LogonFailed" and Timestamp > datetime(2026-11-20)
| summarize Accounts = dcount(AccountName) by IPAddress
| top 20 by Accounts""",
}


def fill(store: EventStore, events: int, users: int, ips: int) -> float:
    """Generate the rows inside DuckDB (hash-derived, so every run makes the same data)."""
    started = time.perf_counter()
    with store.connect() as con:
        con.execute(
            f"""INSERT INTO IdentityLogonEvents (Timestamp, ActionType, LogonType, Protocol, FailureReason,
                EventId, Application, AccountName, AccountDomain, AccountSid, IPAddress, Port,
                DestinationDeviceName, Source, ReportId)
            SELECT TIMESTAMPTZ '2026-11-01 00:00:00+00' + to_microseconds(i * (30 * 86400000000 // {events})),
                CASE WHEN hash(i, 'f') % 5 = 0 THEN 'LogonFailed' ELSE 'LogonSuccess' END,
                'Network', CASE WHEN i % 3 = 0 THEN 'NTLM' ELSE 'Kerberos' END,
                CASE WHEN hash(i, 'f') % 5 = 0 THEN 'Wrong password' END,
                CASE WHEN hash(i, 'f') % 5 = 0 THEN 4625 ELSE 4624 END, 'Active Directory',
                'user' || lpad(CAST(hash(i, 'u') % {users} AS VARCHAR), 6, '0'), 'LAB',
                'S-1-5-21-1-2-3-' || CAST(hash(i, 'u') % {users} AS VARCHAR),
                '10.' || CAST(hash(i, 'ip') % {ips} // 65536 AS VARCHAR) || '.'
                    || CAST(hash(i, 'ip') % {ips} // 256 % 256 AS VARCHAR) || '.'
                    || CAST(hash(i, 'ip') % 256 AS VARCHAR),
                49152 + CAST(i % 1000 AS INTEGER), 'DC1.lab.example.test', 'bench', 'dc1:security:' || i
            FROM range({events}) t(i)"""
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--ips", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "hunting.jsonl")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = HuntingSettings(max_rows=100_000, query_timeout_seconds=120)
        store = EventStore(Path(tmp) / "events.duckdb", settings)
        store.initialize()
        fill_seconds = fill(store, args.events, args.users, args.ips)
        size_mb = round((Path(tmp) / "events.duckdb").stat().st_size / 2**20)
        for name, query in HUNTS.items():
            first = run_query(store, query)
            times = [run_query(store, query).elapsed_seconds for _ in range(args.repeat)]
            rows.append(
                {
                    "bench": "hunting_query",
                    "at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "hunt": name,
                    "events": args.events,
                    "result_rows": len(first.rows),
                    "first_seconds": round(first.elapsed_seconds, 3),
                    "median_seconds": round(statistics.median(times), 3),
                    "fill_seconds": round(fill_seconds, 1),
                    "file_mb": size_mb,
                    "cpus": os.cpu_count(),
                    "threads": settings.threads,
                    "load": round(os.getloadavg()[0], 1),
                }
            )
            print(json.dumps(rows[-1]))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a", encoding="utf-8") as out:
        out.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
