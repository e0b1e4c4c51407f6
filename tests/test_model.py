"""Domain types (model.py): what an undo receives from the action it undoes."""

from __future__ import annotations

from datetime import UTC, datetime

from clampdown.model import AccountState, Action, ActionOutcome, ActionStatus


def _action(state_before: AccountState | None, outcome: ActionOutcome) -> Action:
    return Action(
        id=7,
        type="entra.disable_devices",
        provider="entra",
        target="alice",
        status=ActionStatus.COMPLETED,
        requested_by="analyst",
        reason="INC-16",
        requested_at=datetime(2026, 12, 1, tzinfo=UTC),
        state_before=state_before,
        result=outcome.to_json(),
    )


def test_restore_point_is_the_state_before_plus_what_the_connector_asked_to_keep() -> None:
    before = AccountState(True, "enabled", {"accountEnabled": True})
    plain = ActionOutcome(changed=True, message="done", details={"accountEnabled": False})
    assert "undo_with" not in plain.to_json()  # results of other actions stay as they were
    assert _action(before, plain).restore_point == before

    kept = ActionOutcome(True, "done", undo_with={"disabledDevices": ["d1", "d2"], "apiToken": "x"})
    point = _action(before, kept).restore_point
    assert point == AccountState(True, "enabled", {"accountEnabled": True, "disabledDevices": ["d1", "d2"]})
    assert _action(None, kept).restore_point == AccountState(values={"disabledDevices": ["d1", "d2"]})
    assert _action(None, plain).restore_point is None
