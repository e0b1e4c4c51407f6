"""Playbooks: contain a person everywhere in one step, in the order that holds for hybrid users,
as one containment record; and release them again by undoing exactly what the containment (and
the open containments it superseded) changed, once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime

from clampdown.auth.principal import PermissionDenied, Principal, scope_words
from clampdown.catalog import ActionDefinition, get_action
from clampdown.config import PlaybookSettings, PlaybookStep
from clampdown.errors import InvalidInput, NotFound
from clampdown.limits import MAX_REASON, clean_incident, clean_text
from clampdown.model import (
    Account,
    Action,
    ActionSource,
    ActionStatus,
    Containment,
    ContainmentState,
    StepRole,
    restore_point,
)
from clampdown.policy import Verdict
from clampdown.services.actions import ActionService, clean_reason
from clampdown.services.people import LinkedAccount, find_person, link
from clampdown.services.planning import PlanItem, plan_item
from clampdown.services.residual import ResidualAccessService, undone_steps
from clampdown.store.actions import NewAction
from clampdown.store.containments import ContainmentStore, NewContainment

RELEASE = "release"


@dataclass(frozen=True)
class PlaybookRun:
    """One run: its containment, batch id, the actions queued (in step order), the steps left out
    and, for a timed containment, the steps that have no inverse and so are not released later."""

    playbook: str
    person: str
    batch_id: str | None
    actions: list[Action] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    plan: list[PlanItem] = field(default_factory=list)  # for a dry-run: nothing was queued
    containment_id: int | None = None
    notes: list[str] = field(default_factory=list)


def steps_to_release(chain: list[Containment]) -> list[Action]:
    """What a release undoes: every step of the chain that completed and changed something, has an
    inverse and is not undone yet; of several on the same account and type, the earliest, whose
    state before is the state before the first containment."""
    undone = undone_steps(chain)
    chosen: dict[tuple[str, str], Action] = {}
    for containment in chain:
        for step in containment.steps:
            if (
                step.status is not ActionStatus.COMPLETED
                or not step.changed
                or get_action(step.type).inverse is None
                or step.id in undone
                or step.account is None
            ):
                continue
            key = (step.account.id, step.type)
            if key not in chosen or step.id < chosen[key].id:
                chosen[key] = step
    return sorted(chosen.values(), key=lambda a: a.id)


def in_flight(chain: list[Containment]) -> list[Action]:
    """Steps that started and have not ended (a worker holds them, or died holding them, or they
    wait to retry): they may have changed the account, so a release undoes them once they end."""
    undone = undone_steps(chain)
    return [
        s
        for c in chain
        for s in c.steps
        if (s.status is ActionStatus.RUNNING or (s.status is ActionStatus.QUEUED and s.attempts > 0))
        and get_action(s.type).inverse is not None
        and s.id not in undone
    ]


def _not_undone(step: Action) -> str:
    """Why a release leaves a step as it is: it changed nothing, or what it took cannot be given
    back (sessions ended, methods removed, grants revoked), said with what it took."""
    if step.status is ActionStatus.COMPLETED and step.changed and get_action(step.type).inverse is None:
        took = str((step.result or {}).get("message") or "")
        return f"{step.type} (action {step.id}): cannot be restored" + (f": {took}" if took else "")
    return f"{step.type} (action {step.id}): nothing to undo"


def _after(
    items: list[NewAction], index: dict[tuple[str, str], int], after: str, account: Account
) -> int | None:
    """The item a step on `account` comes after: the step `after` in the same directory, else on
    the account it links to (a tenant's user after the AD account it is synced from), else its
    first item."""
    if (after, account.where) in index:
        return index[after, account.where]
    found = [n for (type_id, _), n in index.items() if type_id == after]
    linked = [n for n in found if (a := items[n].account) is not None and link(account, a)]
    return next(iter(linked or found), None)


def _joined(first: Verdict | None, second: Verdict | None) -> Verdict | None:
    """Both verdicts' rules as one, for a request approved together with something else."""
    if first is None or second is None:
        return first or second
    approvals = tuple(dict.fromkeys((*first.approvals, *second.approvals)))
    return Verdict(first.protection or second.protection, approvals)


def sees_containment(principal: Principal, containment: Containment) -> bool:
    """A scoped user sees a containment only if all of it is in their directories: its accounts
    and every action that hangs off it (its person, reason and steps name the others otherwise)."""
    if principal.scope is None:
        return True
    where = {a.where for a in containment.accounts} | {a.instance for a in containment.actions if a.instance}
    return bool(where) and where <= principal.scope


class PlaybookService:
    def __init__(
        self, actions: ActionService, playbooks: dict[str, PlaybookSettings], containments: ContainmentStore
    ) -> None:
        self.actions = actions
        self.playbooks = playbooks
        self.containments = containments
        self.residual = ResidualAccessService(actions.connectors, actions.clock)

    def playbook(self, name: str) -> PlaybookSettings:
        """The playbook called `name`; InvalidInput naming the known ones."""
        if name not in self.playbooks:
            known = ", ".join(sorted([*self.playbooks, RELEASE]))
            raise InvalidInput(f"unknown playbook '{name}'; known playbooks: {known}")
        return self.playbooks[name]

    async def run(
        self,
        name: str,
        reference: str,
        reason: str | None,
        principal: Principal,
        *,
        until: datetime | None = None,
        request_approval: bool = False,
        dry_run: bool = False,
        incident: str | None = None,
        source: ActionSource = ActionSource.PLAYBOOK,
    ) -> PlaybookRun:
        """Run playbook `name` (or `release`) over every linked account of one person: one new
        containment, which supersedes the person's open one. `incident`: the ticket id the
        containment and every action of it carry; `source`: where its steps were born (a detection
        rule's containment says rule)."""
        if name == RELEASE:
            return await self.release(reference, reason, principal, dry_run=dry_run, incident=incident)
        playbook = self.playbook(name)
        steps = [get_action(step.action) for step in playbook.steps]
        for definition in steps:  # all or nothing: a person is contained everywhere or not at all
            await self.actions.authorize(principal, definition, reference)
        text = clean_reason(steps[0], reason)
        incident = clean_incident(incident)
        inverses = {d.id: self.actions.timed_inverse(d, until) for d in steps}
        person = await find_person(self.actions.connectors, reference, principal)
        await self._refuse_hidden_hold(principal, {la.account.id for la in person.accounts}, name)
        # A person may have accounts in several directories of one kind (a migrated account in a
        # second forest): each step runs on every one of them.
        by_provider: dict[str, list[LinkedAccount]] = {}
        for la in person.accounts:
            by_provider.setdefault(la.account.provider, []).append(la)
        gate = self.actions.guardrails
        everyone = [la.account for la in person.accounts]
        whole_person = Verdict(approvals=gate.person_rules(everyone, reference)) if gate else None
        batch_id = str(uuid.uuid4())
        items: list[NewAction] = []
        index: dict[tuple[str, str], int] = {}  # (action type, directory) -> its item
        skipped: list[str] = []
        notes: list[str] = []
        plan: list[PlanItem] = []
        runs: list[tuple[PlaybookStep, ActionDefinition, LinkedAccount | None]] = [
            (step, d, la)
            for step, d in zip(playbook.steps, steps, strict=True)
            for la in by_provider.get(d.provider, [None])
        ]
        for step, definition, linked in runs:
            if linked is None:
                skipped.append(f"{definition.id}: {person.reference} has no {definition.provider} account")
                continue
            inverse = inverses[definition.id]
            if until is not None and inverse is None and linked is by_provider[definition.provider][0]:
                notes.append(f"{definition.id} has no inverse: it is not undone at {until.isoformat()}")
            account = linked.account
            connector = self.actions.connector_for(definition, account.where)
            timer = self.actions.judge(inverse, account, linked.state, account.name) if inverse else None
            also = _joined(timer, whole_person)
            gated = await self.actions.gate(
                principal,
                definition,
                connector,
                account.name,
                account,
                request_approval=request_approval,
                playbook=name,
                state=linked.state,
                also=also,
            )
            plan.append(
                plan_item(
                    definition,
                    reference,
                    account,
                    linked.state,
                    gated.reason and f"needs approval: {gated.reason}",
                )
            )
            index[definition.id, account.where] = len(items)
            items.append(
                NewAction(
                    type=definition.id,
                    provider=definition.provider,
                    target=account.name,
                    requested_by=principal.username,
                    reason=text,
                    account=account,
                    batch_id=batch_id,
                    playbook=name,
                    approval_reason=gated.reason,
                    approval_rules=gated.rules,
                    after_index=_after(items, index, step.after, account) if step.after else None,
                    containment_role=StepRole.STEP,
                    source=source,
                    incident=incident,
                )
            )
        if not items:
            raise NotFound(f"{person.reference} has no account any step of '{name}' acts on")
        if dry_run:
            return PlaybookRun(name, person.reference, None, skipped=skipped, plan=plan, notes=notes)
        if until is not None:
            for n, item in enumerate(list(items)):
                inverse = inverses[item.type]
                if inverse is not None:
                    items.append(ActionService.timed_undo(inverse, item, n, until))
        waiting = any(i.approval_reason for i in items)
        record = NewContainment(
            person=person.reference,
            playbook=name,
            requested_by=principal.username,
            reason=text,
            accounts=tuple(la.account for la in person.accounts),
            state=ContainmentState.AWAITING_APPROVAL if waiting else ContainmentState.ACTIVE,
            until=until,
            batch_id=batch_id,
            notes=tuple([*skipped, *notes]),
            incident=incident,
        )
        created = await self.containments.create(
            record, items, self.actions.clock.now(), self.actions.approval_deadline()
        )
        return PlaybookRun(
            name,
            person.reference,
            batch_id,
            list(created.actions),
            skipped,
            containment_id=created.id,
            notes=notes,
        )

    async def containments_of(
        self,
        principal: Principal,
        *,
        states: list[ContainmentState] | None = None,
        person: str | None = None,
        limit: int = 100,
    ) -> list[Containment]:
        """Containments newest first, for a caller who may see the action center; `person`: only
        that person's (any of their names), `states`: only those (partly_contained counts as active)."""
        await self.actions.authorize_read(principal)
        account_ids: list[str] = []
        if person is not None:
            found = await find_person(self.actions.connectors, person, principal)
            account_ids = sorted(la.account.id for la in found.accounts)
        partly = ContainmentState.PARTLY_CONTAINED
        stored = sorted({ContainmentState.ACTIVE if s is partly else s for s in states or ()})
        listed = await self.containments.find(states=stored, account_ids=account_ids, limit=limit)
        wanted = set(states or ())
        return [
            c for c in listed
            if (not wanted or c.effective_state in wanted) and sees_containment(principal, c)
        ]  # fmt: skip

    async def containment(
        self, principal: Principal, containment_id: int, *, residual: bool = False
    ) -> Containment:
        """One containment with every action that hangs off it; with `residual`, an open one also
        says what its accounts may still use (read from the providers now)."""
        await self.actions.authorize_read(principal)
        found = await self.containments.get(containment_id)
        if not sees_containment(principal, found):  # as if it did not exist
            raise NotFound(f"no containment with id {containment_id}")
        return await self.with_residual(found) if residual else found

    async def with_residual(self, containment: Containment) -> Containment:
        """An open containment with what its accounts may still use, and until when; an ended
        one as it is (its accounts are handed back, or held by the one that superseded it)."""
        if not containment.state.is_open:
            return containment
        chain = await self.containments.chain([containment])
        return replace(containment, residual=await self.residual.of(containment, chain))

    async def open_containments(self, principal: Principal, account_ids: set[str]) -> list[Containment]:
        """The person's open containments, newest first (an active one, and one awaiting approval
        beside it); NotFound saying how the latest one ended, if none is open."""
        await self.actions.authorize_read(principal)
        ids = sorted(account_ids)
        open_states = [s for s in ContainmentState if s.is_open]
        found = [
            c for c in await self.containments.find(states=open_states, account_ids=ids)
            if sees_containment(principal, c)
        ]  # fmt: skip
        if found:
            return found
        latest = [
            c
            for c in await self.containments.find(account_ids=ids, limit=1)
            if sees_containment(principal, c)
        ]
        if not latest:
            raise NotFound("no containment of this person in the action center to release")
        last = latest[0]
        how = f": {last.end_reason}" if last.end_reason else ""
        raise NotFound(f"nothing to release: containment {last.id} is {last.state.value}{how}")

    async def _refuse_hidden_hold(self, principal: Principal, account_ids: set[str], what: str) -> None:
        """A scoped user may not take over, nor release, a containment that reaches directories
        outside their access (it holds accounts they cannot see): PermissionDenied, recorded."""
        if principal.scope is None:
            return
        open_states = [s for s in ContainmentState if s.is_open]
        held = await self.containments.find(states=open_states, account_ids=sorted(account_ids))
        chain = await self.containments.chain(held) if held else []
        if any(not sees_containment(principal, c) for c in chain):
            missing = "access to every directory of the person's containment"
            await self.actions.record_denial(principal, f"playbook.{what}", None, missing)
            raise PermissionDenied(
                f"{principal.username} may not run {what} on this person: their open containment "
                f"reaches directories outside {scope_words(principal.scope)}; someone with access "
                "to all of them must",
                missing,
            )

    async def release(
        self,
        reference: str,
        reason: str | None,
        principal: Principal,
        *,
        dry_run: bool = False,
        incident: str | None = None,
    ) -> PlaybookRun:
        """Undo what the person's open containments (and the ones they superseded) changed, in
        the same order, restoring each account's state as it was read before; once. The release
        carries `incident`, or else the containment's."""
        incident = clean_incident(incident)
        person = await find_person(self.actions.connectors, reference, principal)
        await self._refuse_hidden_hold(principal, {la.account.id for la in person.accounts}, RELEASE)
        chain = await self.containments.chain(
            await self.open_containments(principal, {la.account.id for la in person.accounts})
        )
        containment = chain[0]
        batch_id = str(uuid.uuid4())
        items: list[NewAction] = []
        plan: list[PlanItem] = []
        skipped: list[str] = []
        index: dict[int, int] = {}
        chosen = steps_to_release(chain)
        flying = in_flight(chain)
        running = {a.id for a in flying}
        chosen = sorted([*chosen, *flying], key=lambda a: a.id)
        chosen_ids = {a.id for a in chosen}
        for c in chain:
            skipped += [_not_undone(a) for a in c.steps if a.id not in chosen_ids]
        given = clean_text("reason", reason, MAX_REASON)
        for action in chosen:
            definition = get_action(action.type)
            inverse = get_action(definition.inverse or "")
            await self.actions.authorize(principal, definition, action.target)
            await self.actions.authorize(principal, inverse, action.target)
            text = given or f"release of action {action.id}"
            linked = next(
                (la for la in person.accounts if action.account and la.account.id == action.account.id), None
            )
            state = linked.state if linked else None
            verdict = self.actions.judge(inverse, action.account, state, action.target)
            inherited = action.approval_rules if action.approved_by else ()
            missing = [r for r in (verdict.rules if verdict else ()) if r not in inherited]
            if missing:
                approval, rules, approved_by = "; ".join(missing), (verdict.rules if verdict else ()), None
            elif action.approved_by:
                approval = None
                rules, approved_by = inherited, action.approved_by
            else:
                approval, rules, approved_by = None, (), None
            plan.append(self._plan(inverse, action, linked, approval))
            index[action.id] = len(items)
            items.append(
                NewAction(
                    type=inverse.id,
                    provider=inverse.provider,
                    target=action.target,
                    requested_by=principal.username,
                    reason=text,
                    account=action.account,
                    batch_id=batch_id,
                    playbook=RELEASE,
                    undoes_action_id=action.id,
                    restore_state=restore_point(action),
                    # A step still in flight is undone once it ended (if it changed anything).
                    after_index=None if action.id in running else index.get(action.after_action_id or 0),
                    after_action_id=action.id if action.id in running else None,
                    approval_reason=approval,
                    approval_rules=rules,
                    approved_by=approved_by,
                    containment_role=StepRole.RELEASE,
                    instance=action.instance,
                    source=ActionSource.PLAYBOOK,
                    incident=incident or containment.incident,
                )
            )
        if dry_run:
            return PlaybookRun(
                RELEASE, person.reference, None, skipped=skipped, plan=plan, containment_id=containment.id
            )
        released = await self.containments.release(
            chain,
            items,
            principal.username,
            given or f"released by {principal.username}",
            self.actions.clock.now(),
            self.actions.approval_deadline(),
        )
        queued = [a for a in released.actions if a.batch_id == batch_id]
        return PlaybookRun(RELEASE, person.reference, batch_id, queued, skipped, containment_id=released.id)

    @staticmethod
    def _plan(
        inverse: ActionDefinition, action: Action, linked: LinkedAccount | None, approval: str | None
    ) -> PlanItem:
        account = linked.account if linked else action.account  # linked: how it links today
        state = linked.state if linked else None
        return plan_item(inverse, action.target, account, state, approval and f"needs approval: {approval}")
