"""Shared by the audit tests: events with fixed, distinct content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clampdown.audit.chain import AuditEvent

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def make_event(n: int, name: str = "action.requested", actor: str = "alice") -> AuditEvent:
    """Event number `n`: its subject and data name it, so every event is told apart in the chain."""
    return AuditEvent(T0 + timedelta(seconds=n), actor, name, f"user{n}", {"n": n, "reason": f"INC-{n}"})
