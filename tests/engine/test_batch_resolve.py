"""A connector that finds many users in one request (BatchResolver) is asked once per group."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel

from clampdown.catalog import get_action
from clampdown.engine.execution import Claimed, Lane, execute_group
from clampdown.errors import AccountNotFound
from clampdown.model import Account, AccountState, Action, ActionContext, ActionOutcome, ActionStatus
from clampdown.store.queue import Resolution


class _Finder:
    """An in-memory directory that resolves in batches and records how it was asked."""

    provider: ClassVar[str] = "ad"
    settings_model: ClassVar[type[BaseModel]] = BaseModel

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.one_by_one: list[str] = []
        self.disabled: list[str] = []

    @classmethod
    def from_settings(cls, settings: object) -> _Finder:
        return cls()

    async def resolve_users(self, references: list[str]) -> list[Account | Exception]:
        self.batches.append(list(references))
        return [
            AccountNotFound(f"no user {r}") if r.startswith("missing") else Account("ad", f"id-{r}", r)
            for r in references
        ]

    async def resolve_user(self, reference: str) -> Account:
        self.one_by_one.append(reference)
        return Account("ad", f"id-{reference}", reference)

    async def read_state(self, account: Account) -> AccountState:
        return AccountState(enabled=True, status="enabled")

    async def disable_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        self.disabled.append(account.name)
        return ActionOutcome(changed=True, message=f"disabled {account.name}")

    async def check(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _claimed(n: int, target: str, account: Account | None = None) -> Claimed:
    action = Action(
        id=n, type="ad.disable_user", provider="ad", target=target, status=ActionStatus.RUNNING,
        requested_by="analyst", reason="test", requested_at=datetime.now(UTC), attempts=1, account=account,
    )  # fmt: skip
    return Claimed(action)


async def _run(finder: _Finder, items: Sequence[Claimed]) -> tuple[list[object], list[Resolution]]:
    stored: list[Resolution] = []

    async def persist(resolutions: Sequence[Resolution]) -> None:
        stored.extend(resolutions)

    outcomes = await execute_group(finder, get_action("ad.disable_user"), items, persist, Lane("ad", 4))
    return list(outcomes), stored


async def test_a_group_is_resolved_in_one_request_and_each_item_keeps_its_own_answer() -> None:
    finder = _Finder()
    known = Account("ad", "id-known", "known")
    items = [
        _claimed(1, "alice"),
        _claimed(2, "missing-bob"),
        _claimed(3, "known", known),
        _claimed(4, "carol"),
    ]

    outcomes, stored = await _run(finder, items)

    assert finder.batches == [["alice", "missing-bob", "carol"]]  # the one already resolved is not asked
    assert finder.one_by_one == []
    assert finder.disabled == ["alice", "known", "carol"]
    assert isinstance(outcomes[1], AccountNotFound) and "missing-bob" in str(outcomes[1])
    assert [isinstance(o, ActionOutcome) and o.changed for o in (outcomes[0], outcomes[2], outcomes[3])] == [
        True, True, True
    ]  # fmt: skip
    # The state before acting is still made durable for each action that acts, with its account.
    assert [(r.action_id, r.account.id) for r in stored] == [
        (1, "id-alice"),
        (3, "id-known"),
        (4, "id-carol"),
    ]


async def test_a_single_lookup_is_asked_alone() -> None:
    finder = _Finder()
    outcomes, _ = await _run(
        finder, [_claimed(1, "alice"), _claimed(2, "known", Account("ad", "k", "known"))]
    )
    assert finder.batches == [] and finder.one_by_one == ["alice"]
    assert all(isinstance(o, ActionOutcome) for o in outcomes)
