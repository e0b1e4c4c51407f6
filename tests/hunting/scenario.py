"""A known day on a domain controller: ordinary logons, a brute force on bob, a password spray
from one address over twelve users, and account changes. Hunts have exact expected answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.hunting.evtx_writer import SecurityEvent

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
DC = "DC1.lab.example.test"
DOMAIN = "LAB"
BRUTE_USER, BRUTE_IP, BRUTE_FAILURES = "bob.baker", "10.20.0.66", 30
SPRAY_IP = "203.0.113.7"
SPRAY_USERS = [f"user{i:02d}" for i in range(12)]
NORMAL_USERS = ["alice.martin", "carol.chen", "dave.diaz", "erin.evans"]


def _sid(name: str) -> str:
    return f"S-1-5-21-1004336348-1177238915-682003330-{1100 + sum(map(ord, name))}"


def security_events(first_record: int = 1, computer: str = DC) -> list[SecurityEvent]:
    """The day's events in record order."""
    out: list[SecurityEvent] = []

    def add(event_id: int, at: datetime, **data: str) -> None:
        out.append(SecurityEvent(event_id, at, first_record + len(out), list(data.items()), computer))

    for i, user in enumerate(NORMAL_USERS * 5):
        at = START + timedelta(minutes=i)
        add(
            4768,
            at,
            TargetUserName=user,
            TargetDomainName=DOMAIN,
            TargetSid=_sid(user),
            ServiceName="krbtgt",
            Status="0x0",
            IpAddress=f"::ffff:10.20.1.{10 + i % 4}",
            IpPort="49152",
        )
        add(
            4624,
            at + timedelta(seconds=2),
            TargetUserName=user,
            TargetDomainName=DOMAIN,
            TargetUserSid=_sid(user),
            LogonType="3",
            AuthenticationPackageName="Kerberos",
            WorkstationName=f"WS{i % 4:02d}",
            IpAddress=f"10.20.1.{10 + i % 4}",
            IpPort="49153",
        )
        add(
            4769,
            at + timedelta(seconds=3),
            TargetUserName=f"{user}@LAB.EXAMPLE.TEST",
            ServiceName="cifs/fs1",
            Status="0x0",
            IpAddress=f"::ffff:10.20.1.{10 + i % 4}",
            IpPort="49154",
        )
    brute = START + timedelta(hours=1)
    for i in range(BRUTE_FAILURES):
        add(
            4625,
            brute + timedelta(seconds=10 * i),
            TargetUserName=BRUTE_USER,
            TargetDomainName=DOMAIN,
            Status="0xc000006d",
            SubStatus="0xc000006a",
            LogonType="3",
            AuthenticationPackageName="NTLM",
            WorkstationName="KALI",
            IpAddress=BRUTE_IP,
            IpPort=str(50000 + i),
        )
    add(
        4740,
        brute + timedelta(minutes=5),
        TargetUserName=BRUTE_USER,
        TargetDomainName="KALI",
        TargetSid=_sid(BRUTE_USER),
        SubjectUserName="DC1$",
        SubjectDomainName=DOMAIN,
        SubjectUserSid="S-1-5-18",
    )
    spray = START + timedelta(hours=2)
    for i, user in enumerate(SPRAY_USERS):
        if i % 2:
            add(
                4771,
                spray + timedelta(seconds=20 * i),
                TargetUserName=user,
                TargetSid=_sid(user),
                ServiceName="krbtgt/LAB",
                Status="0x18",
                IpAddress=f"::ffff:{SPRAY_IP}",
                IpPort="60000",
            )
        else:
            add(
                4625,
                spray + timedelta(seconds=20 * i),
                TargetUserName=user,
                TargetDomainName=DOMAIN,
                Status="0xc000006d",
                SubStatus="0xc000006a",
                LogonType="3",
                AuthenticationPackageName="NTLM",
                WorkstationName="-",
                IpAddress=SPRAY_IP,
                IpPort="60001",
            )
    admin = dict(
        SubjectUserName="administrator", SubjectDomainName=DOMAIN, SubjectUserSid=_sid("administrator")
    )
    changes = START + timedelta(hours=3)
    add(
        4720,
        changes,
        TargetUserName="frank.fox",
        TargetDomainName=DOMAIN,
        TargetSid=_sid("frank.fox"),
        UserPrincipalName="frank.fox@lab.example.test",
        **admin,
    )
    add(
        4722,
        changes + timedelta(seconds=5),
        TargetUserName="frank.fox",
        TargetDomainName=DOMAIN,
        TargetSid=_sid("frank.fox"),
        **admin,
    )
    add(
        4724,
        changes + timedelta(seconds=10),
        TargetUserName="carol.chen",
        TargetDomainName=DOMAIN,
        TargetSid=_sid("carol.chen"),
        **admin,
    )
    add(
        4723,
        changes + timedelta(seconds=12),
        TargetUserName="dave.diaz",
        TargetDomainName=DOMAIN,
        TargetSid=_sid("dave.diaz"),
        SubjectUserName="dave.diaz",
        SubjectDomainName=DOMAIN,
        SubjectUserSid=_sid("dave.diaz"),
    )
    add(
        4725,
        changes + timedelta(seconds=15),
        TargetUserName=BRUTE_USER,
        TargetDomainName=DOMAIN,
        TargetSid=_sid(BRUTE_USER),
        **admin,
    )
    add(
        4738,
        changes + timedelta(seconds=16),
        TargetUserName=BRUTE_USER,
        TargetDomainName=DOMAIN,
        TargetSid=_sid(BRUTE_USER),
        **admin,
    )
    add(4634, changes + timedelta(seconds=20), TargetUserName="alice.martin", TargetDomainName=DOMAIN)
    return out


LOGON_ROWS = 3 * 20 + BRUTE_FAILURES + len(SPRAY_USERS)  # 4768+4624+4769 each, 4625 x30, the spray
DIRECTORY_ROWS = 1 + 6  # 4740 and six account changes (4634 is not kept)


def winlogbeat_lines(events: list[SecurityEvent]) -> list[str]:
    """The events as Winlogbeat 8 writes them to a JSON lines file."""
    lines = []
    for e in events:
        doc = {
            "@timestamp": e.time.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "event": {
                "code": str(e.event_id),
                "provider": "Microsoft-Windows-Security-Auditing",
                "kind": "event",
            },
            "host": {"name": e.computer.split(".")[0]},
            "winlog": {
                "channel": e.channel,
                "computer_name": e.computer,
                "event_id": str(e.event_id),
                "record_id": e.record_id,
                "provider_name": "Microsoft-Windows-Security-Auditing",
                "event_data": dict(e.data),
            },
        }
        lines.append(json.dumps(doc))
    return lines


def write_jsonl(path: Path, events: list[SecurityEvent]) -> Path:
    path.write_text("\n".join(winlogbeat_lines(events)) + "\n", encoding="utf-8")
    return path
