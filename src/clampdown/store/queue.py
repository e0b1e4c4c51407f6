"""The work queue: the lease protocol the engine's workers use on the actions table, and only they.

The columns it works on, and what each means to it:

- `status`: `queued` (waiting to run), `running` (held by a worker under a lease), or final
  (`completed`, `failed`, `cancelled`). `awaiting_approval` actions are not in the queue yet.
- `available_at` means one thing per status: for `queued`, the time the action is due (now, a
  retry's back-off, or a timed release's `until`); for `running`, the time its lease expires, after
  which another worker may take it over; for `awaiting_approval`, the approval deadline after which
  the request expires (see `store.approvals`).
- `lease_owner`: the worker holding a `running` action; cleared when it ends or goes back to the queue.
- `attempts`: how many times the action was claimed; with `lease_owner` and `status` it fences
  every write after a claim.
- `after_action_id`: a playbook step is claimable only once that action has ended.
- `state_before`: the state read before the first change, written once and never overwritten.
- `history`: failed and interrupted attempts, oldest first.

Lease times are the database's: a claim compares `available_at` with the database's clock and sets
the new lease from it, and so does a renewal, so a worker whose own clock runs ahead can neither
take over an action early nor, running behind, hold one past its lease. A caller may pass `now`
explicitly instead: a test that moves the time of the whole system does.

Every state change after a claim is fenced by (status, lease owner, attempt number): a worker whose
lease expired and whose action another worker took over can no longer write to it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, bindparam, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName, action_event
from clampdown.db.tables import actions
from clampdown.limits import MAX_ACCOUNT_ID, fit_key
from clampdown.model import Account, AccountState, Action, ActionStatus, AttemptRecord
from clampdown.store.actions import restore_state_of, row_to_action
from clampdown.store.containments import expire_after_timers
from clampdown.store.database_time import database_now
from clampdown.store.recording import RecordingStore
from clampdown.store.workers import touch

_DUE = (ActionStatus.QUEUED.value, ActionStatus.RUNNING.value)
_FINAL = tuple(s.value for s in ActionStatus if s.is_final)


@dataclass(frozen=True)
class Resolution:
    """What a worker learned before changing anything: the account and its state."""

    action_id: int
    attempt: int
    account: Account
    state_before: AccountState


@dataclass(frozen=True)
class Completion:
    """A final outcome (completed or failed) for a claimed action."""

    action_id: int
    attempt: int
    status: ActionStatus
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    provider_request_id: str | None = None
    history: tuple[AttemptRecord, ...] | None = None  # the whole new history, when it grew
    event: AuditEvent | None = None  # recorded with the outcome, in the same transaction
    ends_timer_of: int | None = None  # a timed release of this containment: it may expire now


@dataclass(frozen=True)
class Retry:
    """A transient failure: the action goes back to the queue until `retry_at`."""

    action_id: int
    attempt: int
    retry_at: datetime
    error_code: str
    error_message: str
    history: tuple[AttemptRecord, ...]


@dataclass(frozen=True)
class Held:
    """A claimed action the policy gate sent back to awaiting approval: a rule matched the
    account the worker read that no approval of it covers."""

    action_id: int
    attempt: int
    reason: str
    rules: tuple[str, ...]
    deadline: datetime
    event: AuditEvent


class ActionQueue(RecordingStore):
    """Claims, leases and outcomes. Methods are async and each runs in its own transaction."""

    async def claim_next_actions(
        self,
        worker: str,
        limit: int,
        lease_seconds: float,
        now: datetime | None = None,
        running: Collection[int] = (),
    ) -> list[tuple[Action, AccountState | None]]:
        """Take up to `limit` due actions (queued and due, or running with an expired lease),
        marking them running under this worker's lease of `lease_seconds`. Returns each with its
        restore state. Due and the lease are by the database's clock unless `now` is given.
        `running`: the actions the worker is executing itself; never taken again, even when a late
        heartbeat let their lease expire (that would run them twice side by side)."""
        async with self.engine.begin() as conn:
            at = now or await database_now(conn)
            claim = self._claim(worker, limit, at, lease_seconds, running)
            rows = (await conn.execute(claim)).mappings().all()
        claimed = [(row_to_action(r), restore_state_of(r)) for r in rows]
        claimed.sort(key=lambda pair: pair[0].id)
        return claimed

    def _claim(
        self, worker: str, limit: int, now: datetime, lease_seconds: float, running: Collection[int] = ()
    ) -> Any:
        c = actions.c
        before = actions.alias("before")
        # A playbook step waits until the step it comes after has ended.
        ready = or_(
            c.after_action_id.is_(None),
            select(before.c.id).where(before.c.id == c.after_action_id, before.c.status.in_(_FINAL)).exists(),
        )
        due = (
            select(c.id)
            .where(c.status.in_(_DUE), c.available_at <= now, ready)
            .order_by(c.available_at, c.id)
            .limit(limit)
        )
        if running:
            due = due.where(c.id.not_in(list(running)))
        if self.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # On SQLite the single UPDATE statement is atomic: writers are serialized by the database.
        stmt = (
            update(actions)
            .where(c.id.in_(due.scalar_subquery()))
            .values(
                status=ActionStatus.RUNNING.value,
                lease_owner=worker,
                available_at=now + timedelta(seconds=lease_seconds),
                attempts=c.attempts + 1,
                started_at=func.coalesce(c.started_at, now),
            )
            .returning(*actions.c)
        )
        return stmt

    async def renew_leases(
        self, worker: str, action_ids: Sequence[int], lease_seconds: float, now: datetime | None = None
    ) -> bool:
        """The heartbeat: extend the lease of actions this worker still holds and, in the same
        transaction, its row in the workers table. False if that row is missing (register again).
        The lease runs from the database's clock unless `now` is given; the row's always does."""
        async with self.engine.begin() as conn:
            db_now = await database_now(conn)
            if action_ids:
                await conn.execute(
                    update(actions)
                    .where(
                        actions.c.id.in_(list(action_ids)),
                        actions.c.lease_owner == worker,
                        actions.c.status == ActionStatus.RUNNING.value,
                    )
                    .values(available_at=(now or db_now) + timedelta(seconds=lease_seconds))
                )
            return await touch(conn, worker, db_now, lease_seconds, len(action_ids))

    def _fence(self, worker: str) -> Any:
        c = actions.c
        return and_(
            c.id == bindparam("b_id"),
            c.attempts == bindparam("b_attempt"),
            c.lease_owner == worker,
            c.status == ActionStatus.RUNNING.value,
        )

    async def record_resolutions(self, worker: str, items: Sequence[Resolution]) -> None:
        """Store the resolved account and, the first time only, the state before any change:
        a retry after a crash must not overwrite what was there originally."""
        if not items:
            return
        c = actions.c
        stmt = (
            update(actions)
            .where(self._fence(worker))
            .values(
                account=bindparam("b_account"),
                account_id=bindparam("b_account_id"),
                state_before=func.coalesce(
                    c.state_before, bindparam("b_state", type_=actions.c.state_before.type)
                ),
            )
        )
        params = [
            {
                "b_id": i.action_id,
                "b_attempt": i.attempt,
                "b_account": i.account.to_json(),
                "b_account_id": fit_key(i.account.id, MAX_ACCOUNT_ID),  # a long id hashed to fit
                "b_state": i.state_before.to_json(),
            }
            for i in items
        ]
        async with self.engine.begin() as conn:
            await conn.execute(stmt, params)

    async def finish(self, worker: str, items: Sequence[Completion], now: datetime) -> None:
        """Record final outcomes (completed or failed)."""
        if not items:
            return
        stmt = (
            update(actions)
            .where(self._fence(worker))
            .values(
                status=bindparam("b_status"),
                result=bindparam("b_result", type_=actions.c.result.type),
                error_code=bindparam("b_error_code"),
                error_message=bindparam("b_error_message"),
                provider_request_id=bindparam("b_request_id"),
                finished_at=now,
                lease_owner=None,
            )
        )
        with_history = [i for i in items if i.history is not None]
        events = [i.event for i in items if i.event is not None]
        async with self.engine.begin() as conn:
            await conn.execute(
                stmt,
                [
                    {
                        "b_id": i.action_id,
                        "b_attempt": i.attempt,
                        "b_status": i.status.value,
                        "b_result": i.result,
                        "b_error_code": i.error_code,
                        "b_error_message": i.error_message,
                        "b_request_id": i.provider_request_id,
                    }
                    for i in items
                ],
            )
            if with_history:
                await conn.execute(
                    update(actions)
                    .where(actions.c.id == bindparam("b_id"), actions.c.attempts == bindparam("b_attempt"))
                    .values(history=bindparam("b_history", type_=actions.c.history.type)),
                    [
                        {
                            "b_id": i.action_id,
                            "b_attempt": i.attempt,
                            "b_history": [h.to_json() for h in i.history or ()],
                        }
                        for i in with_history
                    ],
                )
            await expire_after_timers(conn, [i.ends_timer_of for i in items if i.ends_timer_of], now)
            # Last, so the audit chain's lock is held only for the append and the commit.
            await self._record(conn, events)
        self._after_commit(events)

    async def reschedule(self, worker: str, items: Sequence[Retry], now: datetime) -> None:
        """Put transiently failed actions back in the queue until their retry time; those someone
        asked to cancel while the attempt ran are cancelled instead."""
        if not items:
            return
        stmt = (
            update(actions)
            .where(self._fence(worker))
            .values(
                status=ActionStatus.QUEUED.value,
                available_at=bindparam("b_retry_at"),
                error_code=bindparam("b_error_code"),
                error_message=bindparam("b_error_message"),
                history=bindparam("b_history", type_=actions.c.history.type),
                lease_owner=None,
            )
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                stmt,
                [
                    {
                        "b_id": i.action_id,
                        "b_attempt": i.attempt,
                        "b_retry_at": i.retry_at,
                        "b_error_code": i.error_code,
                        "b_error_message": i.error_message,
                        "b_history": [h.to_json() for h in i.history],
                    }
                    for i in items
                ],
            )
            events = await self._cancel_requested(conn, [i.action_id for i in items], now)
            await self._record(conn, events)
        self._after_commit(events)

    async def _cancel_requested(
        self, conn: AsyncConnection, ids: Sequence[int], now: datetime
    ) -> list[AuditEvent]:
        """Cancel, instead of retrying, the actions of `ids` someone asked to cancel while they ran."""
        c = actions.c
        rows = (
            await conn.execute(
                update(actions)
                .where(
                    c.id.in_(list(ids)),
                    c.status == ActionStatus.QUEUED.value,
                    c.cancel_requested_by.is_not(None),
                )
                .values(
                    status=ActionStatus.CANCELLED.value,
                    finished_at=now,
                    error_message=literal("cancelled by ", String)
                    + c.cancel_requested_by
                    + literal(" after a failed attempt: ", String)
                    + func.coalesce(c.error_message, ""),
                    error_code="cancelled",
                )
                .returning(*actions.c)
            )
        ).mappings().all()
        return [
            action_event(EventName.ACTION_CANCELLED, a, str(by), now, message=a.error_message)
            for a in map(row_to_action, rows)
            if (by := a.cancel_requested_by)
        ]

    async def hold_for_approval(self, worker: str, items: Sequence[Held]) -> None:
        """Put actions back in awaiting_approval, with the rules an approval must now cover."""
        if not items:
            return
        stmt = (
            update(actions)
            .where(self._fence(worker))
            .values(
                status=ActionStatus.AWAITING_APPROVAL.value,
                available_at=bindparam("b_deadline"),
                approval_reason=bindparam("b_reason"),
                approval_rules=bindparam("b_rules", type_=actions.c.approval_rules.type),
                approved_by=None,
                lease_owner=None,
            )
        )
        params = [
            {"b_id": i.action_id, "b_attempt": i.attempt, "b_deadline": i.deadline, "b_reason": i.reason,
             "b_rules": list(i.rules)}
            for i in items
        ]  # fmt: skip
        async with self.engine.begin() as conn:
            await conn.execute(stmt, params)
            await self._record(conn, [i.event for i in items])
        self._after_commit([i.event for i in items])
