"""A lab day of domain controller Security events for the demo people, so that hunts in the lab
find something: ordinary Kerberos and network logons, a brute force that locks one account, a
password spray over everyone from one address, and an administrator's account changes.

Written as Winlogbeat JSON lines (what a lab DC would ship), then ingested like any other file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from clampdown_lab.people import DEMO_PEOPLE, LAB_DOMAIN, LAB_NETBIOS

DC = f"DC1.{LAB_DOMAIN}"
BRUTE_FORCE_IP = "10.20.0.66"
SPRAY_IP = "203.0.113.7"


@dataclass(frozen=True)
class _Event:
    event_id: int
    time: datetime
    data: dict[str, str]


def _events(start: datetime) -> list[_Event]:
    out: list[_Event] = []
    people = [p.username for p in DEMO_PEOPLE]
    for i, user in enumerate(people * 6):
        at = start + timedelta(minutes=7 * i)
        ip = f"10.20.1.{10 + i % len(people)}"
        out.append(
            _Event(
                4768,
                at,
                {
                    "TargetUserName": user,
                    "TargetDomainName": LAB_NETBIOS,
                    "Status": "0x0",
                    "ServiceName": "krbtgt",
                    "IpAddress": f"::ffff:{ip}",
                    "IpPort": "49152",
                },
            )
        )
        out.append(
            _Event(
                4624,
                at + timedelta(seconds=1),
                {
                    "TargetUserName": user,
                    "TargetDomainName": LAB_NETBIOS,
                    "LogonType": "3",
                    "AuthenticationPackageName": "Kerberos",
                    "WorkstationName": f"WS{i % len(people):02d}",
                    "IpAddress": ip,
                    "IpPort": "49153",
                },
            )
        )
    victim = people[1]
    brute = start + timedelta(hours=2)
    for i in range(25):
        out.append(
            _Event(
                4625,
                brute + timedelta(seconds=6 * i),
                {
                    "TargetUserName": victim,
                    "TargetDomainName": LAB_NETBIOS,
                    "Status": "0xc000006d",
                    "SubStatus": "0xc000006a",
                    "LogonType": "3",
                    "AuthenticationPackageName": "NTLM",
                    "WorkstationName": "KALI",
                    "IpAddress": BRUTE_FORCE_IP,
                    "IpPort": str(51000 + i),
                },
            )
        )
    out.append(
        _Event(
            4740,
            brute + timedelta(seconds=150),
            {
                "TargetUserName": victim,
                "TargetDomainName": "KALI",
                "SubjectUserName": "DC1$",
                "SubjectDomainName": LAB_NETBIOS,
            },
        )
    )
    spray = start + timedelta(hours=4)
    for i, user in enumerate(people):
        out.append(
            _Event(
                4771,
                spray + timedelta(seconds=30 * i),
                {
                    "TargetUserName": user,
                    "ServiceName": f"krbtgt/{LAB_NETBIOS}",
                    "Status": "0x18",
                    "IpAddress": f"::ffff:{SPRAY_IP}",
                    "IpPort": "60000",
                },
            )
        )
    admin = {"SubjectUserName": "administrator", "SubjectDomainName": LAB_NETBIOS}
    out.append(
        _Event(
            4767,
            start + timedelta(hours=5),
            {"TargetUserName": victim, "TargetDomainName": LAB_NETBIOS, **admin},
        )
    )
    out.append(
        _Event(
            4724,
            start + timedelta(hours=5, seconds=20),
            {"TargetUserName": victim, "TargetDomainName": LAB_NETBIOS, **admin},
        )
    )
    return sorted(out, key=lambda e: e.time)  # fmt: skip


def write_lab_day(path: Path, day: datetime | None = None) -> Path:
    """Write the lab day (today, UTC, unless given) as Winlogbeat JSON lines; returns the path.
    Record ids grow with the date, as a DC's do, so each day adds to the one before."""
    start = (day or datetime.now(UTC)).astimezone(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    first_record = int(start.timestamp()) // 86400 * 1000 + 1
    lines = []
    for number, event in enumerate(_events(start), first_record):
        lines.append(
            json.dumps(
                {
                    "@timestamp": event.time.isoformat().replace("+00:00", "Z"),
                    "event": {"code": str(event.event_id), "provider": "Microsoft-Windows-Security-Auditing"},
                    "winlog": {
                        "channel": "Security",
                        "computer_name": DC,
                        "event_id": event.event_id,
                        "record_id": number,
                        "event_data": event.data,
                    },
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
