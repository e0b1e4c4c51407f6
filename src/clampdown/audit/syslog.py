"""Syslog out (RFC 5424) for SIEMs, each message as JSON or as CEF."""

from __future__ import annotations

import json
import logging
import os
import socket

from clampdown import __version__
from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName
from clampdown.config import SyslogSettings

log = logging.getLogger(__name__)
_FACILITY_SECURITY = 13  # log audit
_SEVERITY: dict[str, int] = {  # warning, notice
    EventName.ACCESS_DENIED: 4,
    EventName.ACTION_FAILED: 4,
    EventName.APPROVAL_REJECTED: 5,
}
_NIL = "-"


def _cef_escape(value: object, header: bool = False) -> str:
    text = str(value if value is not None else "")
    text = text.replace("\\", "\\\\")
    return text.replace("|", "\\|") if header else text.replace("=", "\\=").replace("\n", "\\n")


def cef(event: AuditEvent) -> str:
    """ArcSight Common Event Format: header fields, then key=value extensions."""
    severity = 7 if event.event == EventName.ACCESS_DENIED else 3
    ext = {
        "rt": event.at.isoformat(),
        "suser": event.actor,
        "duser": event.subject,
        "act": event.data.get("type", event.event),
        "cs1Label": "reason",
        "cs1": event.data.get("reason"),
        "outcome": event.data.get("status"),
    }
    extension = " ".join(f"{k}={_cef_escape(v)}" for k, v in ext.items() if v is not None)
    head = "|".join(
        _cef_escape(x, header=True) for x in ("Clampdown", "Clampdown", __version__, event.event, event.event)
    )
    return f"CEF:0|{head}|{severity}|{extension}"


def rfc5424(event: AuditEvent, body: str, hostname: str) -> str:
    """<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG."""
    pri = _FACILITY_SECURITY * 8 + _SEVERITY.get(event.event, 6)
    msgid = event.event.replace(".", "_")[:32]
    return f"<{pri}>1 {event.at.isoformat()} {hostname} clampdown {os.getpid()} {msgid} {_NIL} {body}"


class SyslogSender:
    """Sends events to one syslog receiver; never blocks or fails the caller."""

    def __init__(self, settings: SyslogSettings) -> None:
        self.settings = settings
        self.hostname = socket.gethostname()

    def format(self, event: AuditEvent) -> str:
        body = cef(event) if self.settings.format == "cef" else json.dumps(event.to_json(), default=str)
        return rfc5424(event, body, self.hostname)

    def send(self, event: AuditEvent) -> None:
        message = self.format(event).encode()
        address = (self.settings.host, self.settings.port)
        try:
            if self.settings.protocol == "udp":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(message, address)
            else:  # RFC 6587 octet counting
                with socket.create_connection(address, timeout=2) as sock:
                    sock.sendall(f"{len(message)} ".encode() + message)
        except OSError as exc:
            log.warning("syslog to %s:%s failed: %s", *address, exc)
