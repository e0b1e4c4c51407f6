"""Domain types (model.py): what an undo receives from the action it undoes."""

from __future__ import annotations

from datetime import UTC, datetime

from clampdown.model import AccountState, Action, ActionOutcome, ActionStatus, restore_point


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


def test_restore_point_is_the_state_before_plus_what_the_action_recorded() -> None:
    before = AccountState(True, "enabled", {"accountEnabled": True})
    plain = ActionOutcome(changed=True, message="done", details={"accountEnabled": False})
    assert "undo_with" not in plain.to_json()  # results of other actions stay as they were
    recorded = {"accountEnabled": True, "undone.accountEnabled": False}  # its details, as undone.<name>
    assert restore_point(_action(before, plain)) == AccountState(True, "enabled", recorded)

    kept = ActionOutcome(True, "done", undo_with={"disabledDevices": ["d1", "d2"], "apiToken": "x"})
    point = restore_point(_action(before, kept))
    assert point == AccountState(True, "enabled", {"accountEnabled": True, "disabledDevices": ["d1", "d2"]})
    assert restore_point(_action(None, kept)) == AccountState(values={"disabledDevices": ["d1", "d2"]})
    nothing = ActionOutcome(changed=True, message="done")
    assert restore_point(_action(None, nothing)) is None
