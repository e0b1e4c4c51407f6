"""Residual access (services/residual.py): which steps are in force on each account and since when,
and what the service answers when a provider cannot say (not configured, no reader, an error, no
answer in time); an `until` that has passed reads as ended."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from clampdown.errors import TransientError
from clampdown.model import (
    Account,
    Action,
    ActionStatus,
    Containment,
    ContainmentState,
    ResidualAccess,
    ResidualStatus,
    StepRole,
)
from clampdown.services import residual
from clampdown.services.residual import ResidualAccessService, applied_steps

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
ANA = Account("entra", "id-ana", "ana@corp.example")
ANA_AD = Account("ad", "guid-ana", "ana")


def _action(
    action_id: int, type_: str, account: Account, status: ActionStatus = ActionStatus.COMPLETED,
    role: StepRole = StepRole.STEP, finished: datetime | None = None, undoes: int | None = None,
) -> Action:  # fmt: skip
    return Action(
        action_id, type_, account.provider, account.name, status, "lead", "INC-1", T0, account=account,
        finished_at=finished, containment_role=role, undoes_action_id=undoes,
    )  # fmt: skip


def _containment(*actions: Action, accounts: tuple[Account, ...] = (ANA, ANA_AD)) -> Containment:
    return Containment(1, "ana", "contain", "lead", "INC-1", ContainmentState.ACTIVE, T0, accounts=accounts,
                       actions=actions)  # fmt: skip


def test_applied_steps_are_the_completed_steps_not_undone_each_at_its_first_completion() -> None:
    chain = [
        _containment(
            _action(1, "entra.suspend_user", ANA, finished=T0 + timedelta(minutes=1)),
            _action(2, "entra.revoke_sessions", ANA, finished=T0 + timedelta(minutes=2)),
            _action(3, "entra.suspend_user", ANA, finished=T0 + timedelta(minutes=9)),  # applied again later
            _action(4, "ad.disable_user", ANA_AD, finished=T0 + timedelta(minutes=1)),
            _action(5, "ad.enable_user", ANA_AD, role=StepRole.UNDO, undoes=4),  # undone by hand
            _action(6, "entra.mark_compromised", ANA, status=ActionStatus.FAILED),
            _action(7, "entra.remove_auth_methods", ANA, status=ActionStatus.QUEUED),
        )
    ]
    first = {"entra.suspend_user": T0 + timedelta(minutes=1),
             "entra.revoke_sessions": T0 + timedelta(minutes=2)}  # fmt: skip
    assert applied_steps(chain) == {ANA.id: first}
    # An undo still waiting does not count as undone: the step is in force until it runs.
    waiting = _action(5, "ad.enable_user", ANA_AD, status=ActionStatus.QUEUED, role=StepRole.UNDO, undoes=4)
    chain = [_containment(_action(4, "ad.disable_user", ANA_AD, finished=T0), waiting)]
    assert applied_steps(chain) == {ANA_AD.id: {"ad.disable_user": T0}}


class Reader:
    """A connector that reports residual access, answering as told."""

    provider = "entra"

    def __init__(self, answer: list[ResidualAccess] | Exception, delay: float = 0.0) -> None:
        self.answer, self.delay = answer, delay
        self.asked: list[tuple[Account, Mapping[str, datetime]]] = []

    async def residual_access(
        self, account: Account, applied: Mapping[str, datetime]
    ) -> list[ResidualAccess]:
        self.asked.append((account, dict(applied)))
        await asyncio.sleep(self.delay)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Clock:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


async def test_each_account_asks_its_connector_with_what_is_in_force_on_it() -> None:
    until = T0 + timedelta(hours=2)
    tokens = ResidualAccess("x", "x", "access_tokens", ResidualStatus.UNTIL, "until then", until)
    reader = Reader([tokens])
    service = ResidualAccessService({"entra": reader}, Clock(T0 + timedelta(hours=1)))  # type: ignore[dict-item]
    step = _action(1, "entra.suspend_user", ANA, finished=T0)
    containment = _containment(step)
    found = await service.of(containment, [containment])
    assert reader.asked == [(ANA, {"entra.suspend_user": T0})]
    # Named after the account it was asked for; the AD account's provider is not configured.
    assert found[0] == replace(tokens, provider="entra", account=ANA.name)
    assert (found[1].provider, found[1].kind, found[1].status) == ("ad", "unread", ResidualStatus.UNKNOWN)
    assert "the ad connector not configured" in found[1].detail

    # Two hours after the cut, the tokens have expired: ended, not until.
    later = ResidualAccessService({"entra": reader}, Clock(T0 + timedelta(hours=3)))  # type: ignore[dict-item]
    assert (await later.of(containment, [containment]))[0].status is ResidualStatus.ENDED


@pytest.mark.parametrize(
    ("reader", "says"),
    [
        (object(), "cannot report residual access"),
        (Reader(TransientError("Graph answered 503")), "could not be read: Graph answered 503"),
        (Reader([], delay=5), "did not answer within 0.2 s"),
    ],
)
async def test_a_provider_that_cannot_say_is_unknown_with_the_reason(
    reader: object, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(residual, "READ_TIMEOUT_SECONDS", 0.2)
    service = ResidualAccessService({"entra": reader}, Clock(T0))  # type: ignore[dict-item]
    containment = _containment(accounts=(ANA,))
    [found] = await service.of(containment, [containment])
    assert found.status is ResidualStatus.UNKNOWN and says in found.detail
    assert "assume its sessions and tokens still work" in found.detail
