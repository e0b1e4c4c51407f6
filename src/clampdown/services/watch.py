"""The containment watch: while a containment is active, the accounts it holds are read again on a
schedule. A step whose effect no longer holds (an account re-enabled by a directory sync, a risk
dismissed by another admin) is drift, and so is a step that took something away which is back (a
new authentication method or factor, a new consent grant, a privileged group again), found by
asking the provider what the account may still use: audited (`containment.drifted`, to the
webhooks and syslog), noted on the containment, and, where its playbook says `on_drift =
"recontain"`, applied again to the same account (never resolved again by name) through the same
policy gate as every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from clampdown.audit.events import drift_event
from clampdown.auth.principal import Principal, require_permission, require_unscoped
from clampdown.catalog import get_action
from clampdown.config import PlaybookSettings, WatchSettings
from clampdown.connectors.base import ResidualAccessReader
from clampdown.connectors.instances import find_instance
from clampdown.errors import ClampdownError
from clampdown.limits import MAX_REASON
from clampdown.model import (
    Account,
    AccountState,
    Action,
    ActionSource,
    ActionStatus,
    Containment,
    ContainmentState,
    ResidualAccess,
    ResidualStatus,
)
from clampdown.permissions import RESPONSE_MANAGE
from clampdown.services.actions import ActionService
from clampdown.services.playbooks import steps_to_release
from clampdown.services.residual import applied_steps
from clampdown.store.actions import NewAction
from clampdown.store.containments import ContainmentStore

log = logging.getLogger(__name__)
WATCH = "watch"  # the requester of what the watch applies again
_PAGE = 200
# Steps that take away what an attacker can add back while the person is contained, and the kind
# of residual access in which the provider shows it back (status `remains`).
TAKEN_AWAY = {
    "ad.remove_privileged_groups": "privileged_groups",
    "entra.remove_auth_methods": "auth_methods",
    "okta.reset_factors": "factors",
    "okta.revoke_grants": "grants",
}
_KEPT = {"password"}  # what a removal of methods leaves on purpose


@dataclass(frozen=True)
class Drift:
    """A held step whose effect no longer holds on its account."""

    containment: Containment
    step: Action
    key: str
    expected: object
    found: object

    @property
    def containment_id(self) -> int:
        return self.containment.id

    @property
    def step_id(self) -> int:
        return self.step.id

    @property
    def type(self) -> str:
        return self.step.type

    @property
    def account(self) -> str | None:
        """The account as "provider:id"."""
        return _where(self.step) if self.step.account else None

    @property
    def note(self) -> str:
        """The containment's note: one per step and value found, so a round repeats none."""
        account = self.step.account.name if self.step.account else self.step.target
        return (
            f"drift on step {self.step.id}: {self.step.type} on {account}: {self.key} is {self.found} "
            f"outside Clampdown, expected {self.expected}"
        )


@dataclass
class WatchRound:
    """What one pass of the watch found and did."""

    containments: int = 0
    accounts: int = 0
    drifts: list[Drift] = field(default_factory=list)
    reapplied: list[Action] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)  # "provider:id": why it could not be read


def _where(step: Action) -> str:
    """The account a step changed, as "provider:id" (ids are unique only within a provider)."""
    assert step.account is not None
    return f"{step.account.provider}:{step.account.id}"


def _latest_settled(chain: list[Containment]) -> dict[tuple[str, str], Action]:
    """Per (account id, type): the latest completed step (a step applied again replaces the
    first), leaving out every key with another step of it still on its way."""
    latest: dict[tuple[str, str], Action] = {}
    pending: set[tuple[str, str]] = set()
    for containment in chain:
        for step in containment.steps:
            if step.account is None:
                continue
            key = (step.account.id, step.type)
            if not step.status.is_final:
                pending.add(key)
            elif step.status is ActionStatus.COMPLETED and (key not in latest or step.id > latest[key].id):
                latest[key] = step
    return {key: step for key, step in sorted(latest.items(), key=lambda kv: kv[1].id) if key not in pending}


def held_steps(chain: list[Containment]) -> list[Action]:
    """The steps whose effect the containment still holds: what a release would undo, less what
    has no effect to check, taking the latest of several on one account and type (a step applied
    again), and none while another of them is still on its way."""
    releasable = {(s.account.id, s.type) for s in steps_to_release(chain) if s.account is not None}
    return [
        step
        for key, step in _latest_settled(chain).items()
        if key in releasable and get_action(step.type).effect is not None
    ]


def taken_steps(chain: list[Containment], applied: dict[str, dict[str, datetime]]) -> list[Action]:
    """The steps of the chain that took something away and are in force (in `applied`, the
    chain's `applied_steps`), the latest per account and type, none while another is on its way."""
    return [
        step
        for (account_id, type_), step in _latest_settled(chain).items()
        if type_ in TAKEN_AWAY and type_ in applied.get(account_id, {})
    ]


class ContainmentWatch:
    """Reads the accounts of active containments and answers drift; `run` repeats it."""

    def __init__(
        self,
        actions: ActionService,
        containments: ContainmentStore,
        playbooks: Mapping[str, PlaybookSettings],
        settings: WatchSettings,
    ) -> None:
        self.actions = actions
        self.containments = containments
        self.playbooks = playbooks
        self.settings = settings

    async def _active(self) -> list[Containment]:
        found: list[Containment] = []
        before: int | None = None
        while True:
            page = await self.containments.find(
                states=[ContainmentState.ACTIVE], limit=_PAGE, before_id=before
            )
            found.extend(page)
            if len(page) < _PAGE:
                return found
            before = page[-1].id

    async def check(self) -> WatchRound:
        """One pass: every held step of every active containment, its account read now."""
        result = WatchRound()
        held: list[tuple[Containment, Action]] = []
        chains: list[tuple[Containment, list[Containment]]] = []
        for containment in await self._active():
            chain = await self.containments.chain([containment])
            chains.append((containment, chain))
            held.extend((containment, step) for step in held_steps(chain))
            result.containments += 1
        accounts = {_where(step): step for _, step in held}
        result.accounts = len(accounts)
        limit = asyncio.Semaphore(self.settings.concurrency)

        async def read(step: Action) -> tuple[str, AccountState | ClampdownError]:
            assert step.account is not None
            async with limit:
                try:
                    connector = self.actions.connector_for(get_action(step.type), step.instance)
                    return _where(step), await connector.read_state(step.account)
                except ClampdownError as exc:
                    return _where(step), exc

        states = dict(await asyncio.gather(*(read(s) for s in accounts.values())))
        await self._check_taken(chains, result, limit)
        for containment, step in held:
            state = states[_where(step)]
            if isinstance(state, ClampdownError):
                result.unreadable[_where(step)] = str(state)
                continue
            effect = get_action(step.type).effect
            assert effect is not None
            key, expected = effect
            found = state.value_at(key)
            if found is None:  # not reported by this connector (or this read): no evidence either way
                continue
            if found != expected:
                result.drifts.append(Drift(containment, step, key, expected, found))
        return result

    async def _check_taken(
        self,
        chains: list[tuple[Containment, list[Containment]]],
        result: WatchRound,
        limit: asyncio.Semaphore,
    ) -> None:
        """Drift where a step took something away and the provider shows it back."""
        in_force = [(c, chain, applied_steps(chain)) for c, chain in chains]
        taken = [(c, applied, step) for c, chain, applied in in_force for step in taken_steps(chain, applied)]

        async def read(
            applied: dict[str, dict[str, datetime]], step: Action
        ) -> tuple[str, list[ResidualAccess] | str]:
            assert step.account is not None
            where = find_instance(self.actions.connectors, step.provider, step.instance)
            connector = self.actions.connectors.get(where) if where else None
            if not isinstance(connector, ResidualAccessReader):
                return _where(step), []  # a provider that cannot say shows no drift either way
            async with limit:
                try:
                    in_force = applied.get(step.account.id, {})
                    return _where(step), await connector.residual_access(step.account, in_force)
                except ClampdownError as exc:
                    return _where(step), str(exc)

        reads = {_where(step): (applied, step) for _, applied, step in taken}
        found = dict(await asyncio.gather(*(read(applied, step) for applied, step in reads.values())))
        for containment, _, step in taken:
            answer = found[_where(step)]
            if isinstance(answer, str):
                result.unreadable[_where(step)] = answer
                continue
            kind = TAKEN_AWAY[step.type]
            item = next((r for r in answer if r.kind == kind), None)
            back = [i for i in item.items if i not in _KEPT] if item is not None else []
            if item is not None and item.status is ResidualStatus.REMAINS and back:
                result.drifts.append(Drift(containment, step, f"residual.{kind}", "none", "; ".join(back)))

    def response(self, containment: Containment) -> str:
        playbook = self.playbooks.get(containment.playbook)
        return playbook.on_drift if playbook is not None else "alert"

    async def answer(self, drift: Drift) -> list[Action] | None:
        """Audit and note one drift and, where the playbook says so, apply its step again; None if
        it was noted already or the containment ended meanwhile."""
        containment, step = drift.containment, drift.step
        response = self.response(containment)
        now = self.actions.clock.now()
        event = drift_event(containment, step, drift.key, drift.expected, drift.found, now, response)
        items: list[NewAction] = []
        if response == "recontain":
            items.append(self._again(containment, step, drift))
        return await self.containments.record_drift(
            containment.id, drift.note, event, items, now, self.actions.approval_deadline()
        )

    def _again(self, containment: Containment, step: Action, drift: Drift) -> NewAction:
        """The step again, on the very account it changed, as the policy gate judges it now."""
        definition = get_action(step.type)
        account: Account | None = step.account
        verdict = self.actions.judge(definition, account, None, step.target, containment.playbook)
        reason = f"{drift.note}; applied again by the containment watch (containment {containment.id})"
        rules = verdict.rules if verdict else ()  # protected, or an approval rule applies
        approval = "; ".join(rules) if rules else None  # then it waits for a person, as any request
        return NewAction(
            type=definition.id,
            provider=definition.provider,
            target=step.target,
            requested_by=WATCH,
            reason=reason[:MAX_REASON],
            account=account,
            playbook=containment.playbook,
            approval_reason=approval,
            approval_rules=tuple(rules),
            instance=step.instance,
            source=ActionSource.WATCH,
            incident=containment.incident,
        )

    async def run_now(self, principal: Principal) -> WatchRound:
        """One pass asked for by a person (`clampdown containments watch`): they must be allowed
        to manage responses, since the pass may apply steps again."""
        require_permission(principal, RESPONSE_MANAGE, "run the containment watch")
        require_unscoped(principal, "run the containment watch")
        return await self.run_once()

    async def run_once(self) -> WatchRound:
        result = await self.check()
        for drift in result.drifts:
            try:
                queued = await self.answer(drift)
            except ClampdownError as exc:  # one containment's trouble never stops the others
                log.warning("containment %s: drift not answered: %s", drift.containment.id, exc)
                continue
            if queued is not None:
                log.warning("containment %s: %s", drift.containment.id, drift.note)
                result.reapplied.extend(queued)
        return result

    async def run(self, stop: asyncio.Event) -> None:
        """Pass after pass until `stop` is set; the supervisor restarts it after an error."""
        while not stop.is_set():
            await self.run_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.interval_seconds)
