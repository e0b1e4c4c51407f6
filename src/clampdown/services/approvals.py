"""Four eyes: a second person with the right role approves or rejects a waiting request."""

from __future__ import annotations

from collections.abc import Sequence

from clampdown.auth.principal import Principal
from clampdown.catalog import get_action
from clampdown.errors import Conflict, InvalidInput
from clampdown.limits import MAX_BATCH_ID, MAX_REASON, optional_text
from clampdown.model import Action, ActionFilter, ActionStatus
from clampdown.services.actions import ActionService
from clampdown.store.approvals import ApprovalStore


class ApprovalService:
    def __init__(self, actions: ActionService, store: ApprovalStore) -> None:
        self.actions = actions
        self.store = store

    async def pending(self, principal: Principal, batch_id: str | None = None) -> list[Action]:
        """Requests awaiting approval, newest first."""
        flt = ActionFilter(statuses=(ActionStatus.AWAITING_APPROVAL,), batch_id=batch_id)
        return await self.actions.list_actions(flt, principal, limit=1000)

    async def decide(
        self,
        principal: Principal,
        approve: bool,
        *,
        action_ids: Sequence[int] = (),
        batch_id: str | None = None,
        note: str | None = None,
        source: str | None = None,
    ) -> list[Action]:
        """Approve (they are queued at once) or reject requests; never one's own, and only with
        the rights to run the action itself. `source` is where the decision came from (the client's
        address, or the host the CLI ran on), recorded with the principal's channel."""
        await self.actions.authorize_read(principal)
        batch_id = optional_text("batch_id", batch_id, MAX_BATCH_ID)
        note = optional_text("note", note, MAX_REASON)
        # Actions in directories the principal may not see are as if they did not exist.
        found = await self.actions.get_many(list(action_ids), principal) if action_ids else {}
        targets = list(found.values())
        if batch_id:
            targets += await self.pending(principal, batch_id)
        if not targets:
            raise InvalidInput("nothing to decide: give action ids or a batch id with waiting requests")
        for action in targets:
            if action.status is not ActionStatus.AWAITING_APPROVAL:
                raise Conflict(f"action {action.id} is {action.status.value}, not awaiting approval")
            if action.requested_by == principal.username:
                raise Conflict(
                    f"{principal.username} requested action {action.id} and cannot approve their own request"
                )
            await self.actions.authorize(principal, get_action(action.type), action.target)
        decided = await self.store.decide_approval(
            [a.id for a in targets], principal.username, approve, self.actions.clock.now(), note,
            channel=principal.channel, source=source,
        )  # fmt: skip
        if len(decided) < len(targets):
            missed = sorted({a.id for a in targets} - {a.id for a in decided})
            raise Conflict(f"the approval window of action(s) {missed} has closed; ask again")
        return decided
