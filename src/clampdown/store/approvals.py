"""Four eyes in the store: requests awaiting approval are approved, rejected or expire.

While an action awaits approval its `available_at` is the deadline after which it expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update

from clampdown.audit.events import EventName, action_event
from clampdown.db.tables import actions
from clampdown.model import Action, ActionStatus
from clampdown.store.actions import row_to_action
from clampdown.store.containments import settle_after_approval
from clampdown.store.recording import RecordingStore


class ApprovalStore(RecordingStore):
    """Decisions on waiting requests, each in its own transaction with its audit events."""

    async def expire_approvals(self, now: datetime) -> list[Action]:
        """Requests whose approval did not come in time end cancelled; returns them."""
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                update(actions)
                .where(
                    actions.c.status == ActionStatus.AWAITING_APPROVAL.value,
                    actions.c.available_at <= now,
                )
                .values(
                    status=ActionStatus.CANCELLED.value,
                    finished_at=now,
                    error_code="approval_expired",
                    error_message="no one approved the request in time",
                )
                .returning(*actions.c)
            )
            expired = [row_to_action(r) for r in rows.mappings()]
            events = [action_event(EventName.APPROVAL_EXPIRED, a, "clampdown", now) for a in expired]
            held = [a.containment_id for a in expired if a.containment_id]
            events += await settle_after_approval(conn, held, now)
            await self._record(conn, events)
        self._after_commit(events)
        return expired

    async def decide_approval(
        self,
        action_ids: Sequence[int],
        approver: str,
        approve: bool,
        now: datetime,
        note: str | None,
        channel: str | None = None,
        source: str | None = None,
    ) -> list[Action]:
        """Approve (queue now) or reject (cancel) actions still awaiting approval; the events say who
        decided, through which channel (api, console, cli) and from where (address or host)."""
        values: dict[str, Any] = {"approved_by": approver}
        if approve:
            values.update(status=ActionStatus.QUEUED.value, available_at=now)
        else:
            values.update(
                status=ActionStatus.CANCELLED.value,
                finished_at=now,
                error_code="approval_rejected",
                error_message=f"rejected by {approver}" + (f": {note}" if note else ""),
            )
        async with self.engine.begin() as conn:
            rows = await conn.execute(
                update(actions)
                .where(
                    actions.c.id.in_(list(action_ids)),
                    actions.c.status == ActionStatus.AWAITING_APPROVAL.value,
                    actions.c.available_at > now,
                )
                .values(**values)
                .returning(*actions.c)
            )
            decided = [row_to_action(r) for r in rows.mappings()]
            name = EventName.APPROVAL_APPROVED if approve else EventName.APPROVAL_REJECTED
            events = [
                action_event(name, a, approver, now, note=note, channel=channel, source=source)
                for a in decided
            ]
            held = [a.containment_id for a in decided if a.containment_id]
            events += await settle_after_approval(conn, held, now)
            await self._record(conn, events)
        self._after_commit(events)
        return decided
