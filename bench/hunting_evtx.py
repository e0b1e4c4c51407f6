"""EVTX ingest rate: events per second through `clampdown ingest evtx`'s path, against the parser alone.

Writes an EVTX file of --events Security events (logons, failures, Kerberos, account changes over
--users accounts) with the test suite's EVTX writer, then times, best of --repeat:
  parser    the Rust `evtx` parser alone: every record as JSON text (the floor for any ingest);
  parsed    the parser plus json.loads of each record (what any Python consumer pays);
  ingest    Clampdown's ingest: parse, map to IdentityLogonEvents/IdentityDirectoryEvents rows,
            place each in its AD directory, join it to IdentityInfo (which knows every user in AD,
            Entra ID and Okta, unless --no-identities), store in DuckDB in batches, each committed
            with its cursor, into a store holding only IdentityInfo.
Prints one JSON row and appends it to --results.

    .venv/bin/python bench/hunting_evtx.py --events 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import evtx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.hunting.evtx_writer import SecurityEvent, write_evtx

from clampdown.hunting.directories import ADDomain, DirectoryMatcher
from clampdown.hunting.files import read_evtx
from clampdown.hunting.ingest import ingest_windows
from clampdown.hunting.settings import HuntingSettings
from clampdown.hunting.store import Batch, EventStore, Row

START = datetime(2026, 11, 1, tzinfo=UTC)
DOMAIN = ADDomain("ad", "lab.example.test", "lab")


def _sid(user: int) -> str:
    return f"S-1-5-21-1-2-3-{1000 + user}"


def identities(users: int) -> list[Row]:
    """IdentityInfo as a refresh leaves it: each user in AD, Entra ID (synced) and Okta."""
    now = datetime.now(UTC)
    rows = []
    for n in range(users):
        name, upn = f"user{n:05d}", f"user{n:05d}@lab.example.test"
        for provider, object_id, sid in (("ad", f"guid-{n}", _sid(n)), ("entra", f"entra-{n}", _sid(n)),
                                         ("okta", f"00u{n:017d}", None)):  # fmt: skip
            rows.append({
                "Timestamp": now, "Provider": provider, "Directory": provider, "AccountObjectId": object_id,
                "AccountUpn": upn, "AccountName": name if provider == "ad" else upn, "OnPremSid": sid,
                "IsAccountEnabled": True,
            })  # fmt: skip
    return rows


def events(count: int, users: int, seed: int = 7) -> list[SecurityEvent]:
    """A plausible mix: mostly Kerberos and successful logons, some failures, few changes."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        number = rng.randrange(users)
        user = f"user{number:05d}"
        ip = f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        at = START + timedelta(milliseconds=50 * i)
        kind = rng.random()
        if kind < 0.35:
            data = {
                "TargetUserName": user,
                "TargetDomainName": "LAB",
                "TargetSid": _sid(number),
                "ServiceName": "krbtgt",
                "Status": "0x0",
                "IpAddress": f"::ffff:{ip}",
                "IpPort": "49152",
            }
            event_id = 4768
        elif kind < 0.75:
            data = {
                "TargetUserName": user,
                "TargetDomainName": "LAB",
                "TargetUserSid": _sid(number),
                "LogonType": "3",
                "AuthenticationPackageName": "Kerberos",
                "WorkstationName": "WS01",
                "IpAddress": ip,
                "IpPort": "49153",
            }
            event_id = 4624
        elif kind < 0.97:
            data = {
                "TargetUserName": user,
                "TargetDomainName": "LAB",
                "Status": "0xc000006d",
                "SubStatus": "0xc000006a",
                "LogonType": "3",
                "AuthenticationPackageName": "NTLM",
                "WorkstationName": "WS02",
                "IpAddress": ip,
                "IpPort": "50000",
            }
            event_id = 4625
        else:
            data = {
                "TargetUserName": user,
                "TargetDomainName": "LAB",
                "TargetSid": _sid(number),
                "SubjectUserName": "administrator",
                "SubjectDomainName": "LAB",
                "SubjectUserSid": "S-1-5-21-1-2-3-500",
            }
            event_id = rng.choice([4720, 4722, 4724, 4725, 4738, 4740])
        out.append(SecurityEvent(event_id, at, i + 1, list(data.items())))
    return out  # fmt: skip


def best(repeat: int, run: Any) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-identities", action="store_true", help="ingest with IdentityInfo empty")
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results" / "hunting.jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_evtx(Path(tmp) / "Security.evtx", events(args.events, args.users))

        def parser_alone() -> None:
            n = sum(1 for _ in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json())
            assert n == args.events

        def parsed() -> None:
            for record in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json():
                json.loads(record["data"])

        known = [] if args.no_identities else identities(args.users)
        stores = []
        for n in range(args.repeat):  # made before the clock runs
            stores.append(EventStore(Path(tmp) / f"events{n}.duckdb", HuntingSettings()))
            stores[-1].append(Batch({"IdentityInfo": known}, {}))
        runs = iter(stores)
        joined = []

        def ingest() -> None:
            matcher = DirectoryMatcher((DOMAIN,))
            report = ingest_windows(next(runs), read_evtx(path), directories=matcher)
            assert report.read == args.events
            joined.append(getattr(report, "identified", 0))  # 0: a version before the join

        row = {
            "bench": "hunting_evtx",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "events": args.events,
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "identities": len(known),
            "cpus": os.cpu_count(),
            "load": round(os.getloadavg()[0], 1),
        }
        for name, run in (("parser", parser_alone), ("parsed", parsed), ("ingest", ingest)):
            seconds = best(args.repeat, run)
            row[f"{name}_seconds"] = round(seconds, 3)
            row[f"{name}_events_per_second"] = round(args.events / seconds)
        row["rows_with_upn"] = joined[-1]
    print(json.dumps(row))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
