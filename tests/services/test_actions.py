"""The one door for input (services/actions.py, limits.py): malformed targets, reasons and
filters are refused with InvalidInput naming the field, before anything reaches the store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.catalog import get_action
from clampdown.errors import InvalidInput
from clampdown.limits import MAX_REASON, MAX_TARGET, clean_text
from clampdown.model import Action, ActionFilter, ActionStatus
from clampdown.services.actions import ActionService, check_filter, clean_reason, clean_target, undo_refusal
from clampdown.store.actions import ActionStore, NewAction
from tests.sample_actions import sample_action

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
SUSPEND = get_action("okta.suspend_user")  # a reason is required


@pytest.mark.parametrize(
    ("value", "required", "problem"),
    [
        ("a\x00b", False, "note: must not contain a NUL character"),
        ("x" * 11, False, "note: longer than 10 characters"),
        ("   ", True, "note: must not be empty"),
    ],
)
def test_clean_text_refuses_naming_the_field(value: str, required: bool, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        clean_text("note", value, 10, required=required)
    assert refused.value.message == problem


def test_clean_text_strips_and_keeps_what_fits() -> None:
    assert clean_text("note", "  " + "x" * 10 + " ", 10, required=True) == "x" * 10
    assert clean_text("note", None, 10) == ""


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("", "target is empty"),
        ("  ", "target is empty"),
        ("iv\x00an", "target 'iv\\x00an' contains a NUL"),
        ("x" * (MAX_TARGET + 1), f"target is longer than {MAX_TARGET}"),
    ],
)
def test_clean_target_refuses_naming_the_target(target: str, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        clean_target(target)
    assert refused.value.message.startswith(problem)


def test_clean_target_strips() -> None:
    assert clean_target(" x" * (MAX_TARGET // 2) + "  ") == ("x " * (MAX_TARGET // 2)).strip()


@pytest.mark.parametrize(
    ("reason", "problem"),
    [
        (None, "a reason is required for okta.suspend_user"),
        (" ", "a reason is required"),
        ("INC\x00", "reason must not contain a NUL"),
        ("x" * (MAX_REASON + 1), f"reason is longer than {MAX_REASON}"),
    ],
)
def test_clean_reason_refuses_naming_the_reason(reason: str | None, problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        clean_reason(SUSPEND, reason)
    assert refused.value.message.startswith(problem)


def test_clean_reason_keeps_a_reason_and_allows_none_where_optional() -> None:
    assert clean_reason(SUSPEND, "  INC-42 ") == "INC-42"
    assert clean_reason(replace(SUSPEND, reason_required=False), None) == ""


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        (ActionFilter(type="okta.suspend_user\x00"), "type"),
        (ActionFilter(provider="ok\x00ta"), "provider"),
        (ActionFilter(target="iv\x00an"), "target"),
        (ActionFilter(requested_by="a" * 300), "requested_by"),
        (ActionFilter(batch_id="b\x00"), "batch"),
        (ActionFilter(since=datetime(2026, 11, 29, 10, 0)), "since"),
        (ActionFilter(until=datetime(2026, 11, 29, 10, 0)), "until"),
    ],
)
def test_check_filter_refuses_naming_the_field(flt: ActionFilter, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_filter(flt)
    assert refused.value.message.startswith(f"{field}: ")


def test_check_filter_refuses_an_unknown_action_type_and_passes_a_good_filter() -> None:
    with pytest.raises(InvalidInput, match=r"unknown action 'okta\.explode'"):
        check_filter(ActionFilter(type="okta.explode"))
    good = ActionFilter(type="okta.suspend_user", target="ivan", since=T0, until=T0)
    assert check_filter(good) is good


def _action(type_id: str, status: ActionStatus, result: dict[str, Any] | None) -> Action:
    return sample_action(id=5, type=type_id, provider=type_id.split(".")[0], status=status, result=result)


@pytest.mark.parametrize(
    ("action", "refusal"),
    [
        (_action("entra.revoke_sessions", ActionStatus.COMPLETED, {"changed": True}), "has no inverse"),
        (_action("okta.suspend_user", ActionStatus.FAILED, None), "action 5 is failed; only a completed"),
        (_action("okta.suspend_user", ActionStatus.QUEUED, None), "action 5 is queued; only a completed"),
        (_action("okta.suspend_user", ActionStatus.COMPLETED, {"changed": False}), "nothing to undo"),
        (_action("okta.suspend_user", ActionStatus.COMPLETED, {"changed": True}), None),
    ],
)
def test_undo_refusal_says_why_an_action_cannot_be_undone(action: Action, refusal: str | None) -> None:
    said = undo_refusal(action)
    if refusal is None:
        assert said is None
    else:
        assert said is not None and refusal in said


class CountingStore(ActionStore):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.lists = 0

    async def list_actions(self, flt: ActionFilter, **kwargs: Any) -> list[Action]:
        self.lists += 1
        return await super().list_actions(flt, **kwargs)


async def test_list_actions_refuses_a_nul_before_any_query(engine: AsyncEngine, admin: Principal) -> None:
    store = CountingStore(engine)
    service = ActionService(store, {})
    item = NewAction(type="okta.suspend_user", provider="okta", target="ivan", requested_by="a", reason="r")
    [queued] = await store.enqueue([item], T0)
    with pytest.raises(InvalidInput, match=r"^target: must not contain a NUL"):
        await service.list_actions(ActionFilter(target="iv\x00an"), admin)
    assert store.lists == 0
    assert [a.id for a in await service.list_actions(ActionFilter(target="ivan"), admin)] == [queued.id]
    assert store.lists == 1
    if engine.dialect.name == "postgresql":  # what the check spares the caller
        with pytest.raises(DBAPIError):
            await store.list_actions(ActionFilter(target="iv\x00an"))
