"""Playbooks: contain a person everywhere in one step, in the order that holds for hybrid users,
and release them again by undoing exactly what the containment changed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from clampdown.auth.principal import Principal
from clampdown.catalog import ActionDefinition, get_action
from clampdown.config import PlaybookSettings
from clampdown.errors import InvalidInput, NotFound
from clampdown.model import Action, ActionStatus
from clampdown.services.actions import ActionService, clean_reason
from clampdown.services.people import LinkedAccount, find_person
from clampdown.services.planning import PlanItem, plan_item
from clampdown.store.actions import NewAction

RELEASE = "release"


@dataclass(frozen=True)
class PlaybookRun:
    """One run: its batch id, the actions queued (in step order) and the steps left out."""

    playbook: str
    person: str
    batch_id: str | None
    actions: list[Action] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    plan: list[PlanItem] = field(default_factory=list)  # for a dry-run: nothing was queued


class PlaybookService:
    def __init__(self, actions: ActionService, playbooks: dict[str, PlaybookSettings]) -> None:
        self.actions = actions
        self.playbooks = playbooks

    def _playbook(self, name: str) -> PlaybookSettings:
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
    ) -> PlaybookRun:
        """Run playbook `name` (or `release`) over every linked account of one person."""
        if name == RELEASE:
            return await self.release(reference, reason, principal, dry_run=dry_run)
        playbook = self._playbook(name)
        steps = [get_action(step.action) for step in playbook.steps]
        for definition in steps:  # all or nothing: a person is contained everywhere or not at all
            await self.actions.authorize(principal, definition, reference)
        text = clean_reason(steps[0], reason)
        person = await find_person(self.actions.connectors, reference, principal)
        by_provider = {la.account.provider: la for la in person.accounts}
        batch_id = str(uuid.uuid4())
        items: list[NewAction] = []
        index: dict[str, int] = {}
        skipped: list[str] = []
        plan: list[PlanItem] = []
        for step, definition in zip(playbook.steps, steps, strict=True):
            linked = by_provider.get(definition.provider)
            if linked is None:
                skipped.append(f"{definition.id}: {person.reference} has no {definition.provider} account")
                continue
            connector = self.actions.connector_for(definition)
            approval = await self.actions.approval_reason(
                principal, definition, connector, linked.account.name, linked.account,
                request_approval=request_approval, playbook=name, state=linked.state,
            )  # fmt: skip
            plan.append(
                plan_item(
                    definition,
                    reference,
                    linked.account,
                    linked.state,
                    approval and f"needs approval: {approval}",
                )
            )
            index[definition.id] = len(items)
            items.append(
                NewAction(
                    type=definition.id,
                    provider=definition.provider,
                    target=linked.account.name,
                    requested_by=principal.username,
                    reason=text,
                    account=linked.account,
                    batch_id=batch_id,
                    playbook=name,
                    approval_reason=approval,
                    after_index=index.get(step.after) if step.after else None,
                )
            )
        if not items:
            raise NotFound(f"{person.reference} has no account any step of '{name}' acts on")
        if dry_run:
            return PlaybookRun(name, person.reference, None, skipped=skipped, plan=plan)
        if until is not None:
            for n, item in enumerate(list(items)):
                inverse = self.actions.timed_inverse(get_action(item.type), until)
                if inverse is not None:
                    items.append(ActionService.timed_undo(inverse, item, n, until))
        queued = await self.actions.store.enqueue(
            items, self.actions.clock.now(), self.actions.approval_deadline()
        )
        return PlaybookRun(name, person.reference, batch_id, queued, skipped)

    async def release(
        self, reference: str, reason: str | None, principal: Principal, *, dry_run: bool = False
    ) -> PlaybookRun:
        """Undo what the person's latest containment changed, in the same order, restoring each
        account's state as it was read before."""
        person = await find_person(self.actions.connectors, reference, principal)
        ids = {la.account.id for la in person.accounts}
        contained = await self._latest_containment(principal, ids)
        batch_id = str(uuid.uuid4())
        items: list[NewAction] = []
        plan: list[PlanItem] = []
        skipped: list[str] = []
        index: dict[int, int] = {}
        for action in sorted(contained, key=lambda a: a.id):
            definition = get_action(action.type)
            if (
                action.status is not ActionStatus.COMPLETED
                or not action.changed
                or definition.inverse is None
            ):
                skipped.append(f"{action.type} (action {action.id}): nothing to undo")
                continue
            inverse = get_action(definition.inverse)
            await self.actions.authorize(principal, definition, action.target)
            await self.actions.authorize(principal, inverse, action.target)
            text = clean_reason(inverse, reason) or f"release of action {action.id}"
            linked = next(
                (la for la in person.accounts if action.account and la.account.id == action.account.id), None
            )
            plan.append(self._plan(inverse, action, linked))
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
                    restore_state=action.state_before,
                    after_index=index.get(action.after_action_id or 0),
                )
            )
        if not items:
            raise NotFound(f"nothing to release for {person.reference}: no containment changed anything")
        if dry_run:
            return PlaybookRun(RELEASE, person.reference, None, skipped=skipped, plan=plan)
        queued = await self.actions.store.enqueue(items, self.actions.clock.now())
        return PlaybookRun(RELEASE, person.reference, batch_id, queued, skipped)

    async def _latest_containment(self, principal: Principal, account_ids: set[str]) -> list[Action]:
        # Asked of the database: a scan of recent actions would miss it after a large bulk.
        await self.actions.authorize_read(principal)
        runs = await self.actions.store.latest_playbook_run(sorted(account_ids), excluding=RELEASE)
        if not runs:
            raise NotFound("no containment of this person in the action center to release")
        return runs

    @staticmethod
    def _plan(inverse: ActionDefinition, action: Action, linked: LinkedAccount | None) -> PlanItem:
        account = linked.account if linked else action.account  # linked: how it links today
        return plan_item(inverse, action.target, account, linked.state if linked else None)
