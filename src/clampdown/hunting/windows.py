"""Windows Security events from domain controllers, turned into IdentityLogonEvents and
IdentityDirectoryEvents rows; EVTX files and Winlogbeat JSON lines both arrive here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clampdown.hunting.schema import IDENTITY_DIRECTORY_EVENTS, IDENTITY_LOGON_EVENTS
from clampdown.hunting.store import Row

LOGON_EVENTS = frozenset({4624, 4625, 4768, 4769, 4771})
DIRECTORY_EVENTS = {
    4720: "Account created",
    4722: "Account enabled",
    4723: "Account password change",
    4724: "Account password reset",
    4725: "Account disabled",
    4726: "Account deleted",
    4738: "Account changed",
    4740: "Account locked out",
    4767: "Account unlocked",
}
SUPPORTED_EVENTS = LOGON_EVENTS | frozenset(DIRECTORY_EVENTS)

_LOGON_TYPES = {
    "2": "Interactive",
    "3": "Network",
    "4": "Batch",
    "5": "Service",
    "7": "Unlock",
    "8": "NetworkCleartext",
    "9": "NewCredentials",
    "10": "RemoteInteractive",
    "11": "CachedInteractive",
}
# NTSTATUS codes of 4625 and Kerberos result codes of 4768/4769/4771.
_NTSTATUS = {
    "0xc000006a": "Wrong password",
    "0xc0000064": "No such user",
    "0xc000006d": "Bad user name or password",
    "0xc0000234": "Account locked out",
    "0xc0000072": "Account disabled",
    "0xc000006f": "Outside allowed hours",
    "0xc0000070": "Workstation not allowed",
    "0xc0000071": "Password expired",
    "0xc0000193": "Account expired",
    "0xc0000224": "Password must change",
}
_KERBEROS = {
    "0x6": "No such user",
    "0x12": "Account disabled, expired or locked out",
    "0x17": "Password expired",
    "0x18": "Wrong password",
    "0x25": "Clock skew too great",
}


@dataclass(frozen=True)
class WindowsEvent:
    """One Security event as both formats carry it: the System header and the EventData fields."""

    event_id: int
    time: datetime
    computer: str
    channel: str
    record_id: int
    data: dict[str, str]
    source: str  # evtx or winlogbeat (schema.WINDOWS_SOURCES)

    @property
    def cursor_key(self) -> str:
        """Record ids grow per computer and channel, which makes them a cursor across exports."""
        return f"windows:{self.computer.lower()}:{self.channel.lower()}"


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (Windows writes 7 fractional digits) as an aware UTC datetime."""
    if len(value) == 28 and value[19] == "." and value[27] == "Z":  # Windows: 7 digits, the fast path
        return datetime.fromisoformat(value[:26]).replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        text = value.strip().replace("Z", "+00:00")
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :] or "+00:00"
        parsed = datetime.fromisoformat(f"{head}.{digits[:6].ljust(6, '0')}{zone}" if rest else text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _clean(value: Any) -> str | None:
    text = None if value is None else str(value).strip()
    return None if text in (None, "", "-", "%%1793") else text


def _ip(value: str | None) -> str | None:
    text = _clean(value)
    if text is None:
        return None
    return text.removeprefix("::ffff:")


def _port(value: str | None) -> int | None:
    text = _clean(value)
    return int(text) if text and text.isdigit() and 0 < int(text) < 65536 else None


def _common(event: WindowsEvent) -> Row:
    return {
        "Timestamp": event.time,
        "EventId": event.event_id,
        "Application": "Active Directory",
        "DestinationDeviceName": event.computer,
        "Source": event.source,
        "ReportId": f"{event.computer.lower()}:{event.channel.lower()}:{event.record_id}",
    }


def _logon(event: WindowsEvent) -> Row:
    d = event.data
    status = (d.get("SubStatus") if d.get("Status", "").lower() == "0xc000006d" else None) or d.get("Status")
    status = (status or "").lower()
    name, _, realm = (d.get("TargetUserName") or "").partition("@")
    row = _common(event) | {
        "AccountName": _clean(name),
        "AccountDomain": _clean(d.get("TargetDomainName")) or _clean(realm),
        "AccountSid": _clean(d.get("TargetUserSid") or d.get("TargetSid")),
        "DeviceName": _clean(d.get("WorkstationName")),
        "IPAddress": _ip(d.get("IpAddress")),
        "Port": _port(d.get("IpPort")),
    }
    if event.event_id in (4624, 4625):
        failed = event.event_id == 4625
        package = _clean(d.get("AuthenticationPackageName")) or ""
        row |= {
            "ActionType": "LogonFailed" if failed else "LogonSuccess",
            "LogonType": _LOGON_TYPES.get(str(d.get("LogonType", "")), _clean(d.get("LogonType"))),
            "Protocol": "Kerberos" if package.lower() == "kerberos" else ("NTLM" if package else None),
            "FailureReason": (_NTSTATUS.get(status, status or "Unknown") if failed else None),
        }
    else:
        ok = status in ("0x0", "0", "")
        kind = {4768: "Kerberos TGT", 4769: "Kerberos service ticket", 4771: "Kerberos pre-authentication"}
        row |= {
            "ActionType": "LogonSuccess" if ok and event.event_id != 4771 else "LogonFailed",
            "LogonType": kind[event.event_id],
            "Protocol": "Kerberos",
            "FailureReason": None if ok and event.event_id != 4771 else _KERBEROS.get(status, status),
        }
        if event.event_id == 4769:
            row["AdditionalFields"] = {"ServiceName": d.get("ServiceName")}
    return row


def _directory(event: WindowsEvent) -> Row:
    d = event.data
    target_name = _clean(d.get("TargetUserName"))
    row = _common(event) | {
        "ActionType": DIRECTORY_EVENTS[event.event_id],
        "TargetAccountName": target_name,
        "TargetAccountSid": _clean(d.get("TargetSid")),
        "TargetAccountUpn": _clean(d.get("UserPrincipalName")),
        "AccountName": _clean(d.get("SubjectUserName")),
        "AccountDomain": _clean(d.get("SubjectDomainName")),
        "AccountSid": _clean(d.get("SubjectUserSid")),
    }
    if event.event_id == 4740:
        # 4740 names the computer the bad attempts came from in TargetDomainName.
        row["DeviceName"] = _clean(d.get("TargetDomainName"))
    else:
        row["AdditionalFields"] = {"TargetDomainName": d.get("TargetDomainName")}
    return row


def to_rows(event: WindowsEvent) -> tuple[str, Row] | None:
    """The table and row for a supported event; None for events hunting does not keep."""
    if event.event_id in LOGON_EVENTS:
        return IDENTITY_LOGON_EVENTS.name, _logon(event)
    if event.event_id in DIRECTORY_EVENTS:
        return IDENTITY_DIRECTORY_EVENTS.name, _directory(event)
    return None
