"""An action as the store returns it, for unit tests of what reads actions (events, rules, rendering)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from clampdown.model import Account, Action, ActionStatus

REQUESTED_AT = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
ACCOUNT = Account("okta", "00u1", "ivan@example.test")


def sample_action(**changes: Any) -> Action:
    """okta.suspend_user number 7 on ivan, queued by alice for INC-7; `changes` override any field."""
    action = Action(
        id=7, type="okta.suspend_user", provider="okta", target="ivan", status=ActionStatus.QUEUED,
        requested_by="alice", reason="INC-7", requested_at=REQUESTED_AT, account=ACCOUNT, batch_id="b1",
    )  # fmt: skip
    return replace(action, **changes)
