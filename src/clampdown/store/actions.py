"""Queries on the actions table: enqueue, claim with leases, record outcomes, list and cancel.

Every state change after a claim is fenced by (status, lease owner, attempt number): a worker whose
lease expired and whose action another worker took over can no longer write to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.audit.chain import AuditEvent
from clampdown.audit.recorder import EventRecorder, action_event
from clampdown.errors import Conflict, NotFound
from clampdown.model import Account, AccountState, Action, ActionStatus, AttemptRecord, StateValue
from clampdown.store.tables import actions

_DUE = (ActionStatus.QUEUED.value, ActionStatus.RUNNING.value)
_FINAL = tuple(s.value for s in ActionStatus if s.is_final)


@dataclass(frozen=True)
class NewAction:
    """An action to enqueue; written whole before anything runs."""

    type: str
    provider: str
    target: str
    requested_by: str
    reason: str
    account: Account | None = None
    idempotency_key: str | None = None
    batch_id: str | None = None
    undoes_action_id: int | None = None
    restore_state: AccountState | None = None
    parameters: dict[str, StateValue] = field(default_factory=dict)
    status: ActionStatus = ActionStatus.QUEUED
    error_code: str | None = None  # only for an action recorded as refused at once
    error_message: str | None = None
    after_index: int | None = None  # within one enqueue: runs after the item at this index
    undoes_index: int | None = None  # within one enqueue: undoes the item at this index
    after_action_id: int | None = None  # or after an action already stored
    playbook: str | None = None
    approval_reason: str | None = None  # set: the action waits in awaiting_approval
    not_before: datetime | None = None  # a timed release: not run before this time


@dataclass(frozen=True)
class ActionFilter:
    """Filters for listing and exporting actions; None means any."""

    statuses: tuple[ActionStatus, ...] = ()
    type: str | None = None
    provider: str | None = None
    target: str | None = None  # matches the target as given, or the resolved account id
    requested_by: str | None = None
    batch_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


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


@dataclass(frozen=True)
class Retry:
    """A transient failure: the action goes back to the queue until `retry_at`."""

    action_id: int
    attempt: int
    retry_at: datetime
    error_code: str
    error_message: str
    history: tuple[AttemptRecord, ...]


def _history_from_json(raw: Any) -> tuple[AttemptRecord, ...]:
    records = []
    for item in raw or ():
        records.append(
            AttemptRecord(
                attempt=int(item["attempt"]),
                worker=str(item["worker"]),
                at=datetime.fromisoformat(item["at"]),
                error_code=str(item["error_code"]),
                message=str(item["message"]),
                retry_at=datetime.fromisoformat(item["retry_at"]) if item.get("retry_at") else None,
            )
        )
    return tuple(records)


def row_to_action(row: RowMapping) -> Action:
    """The domain Action for a row of the actions table."""
    return Action(
        id=int(row["id"]),
        type=row["type"],
        provider=row["provider"],
        target=row["target"],
        status=ActionStatus(row["status"]),
        requested_by=row["requested_by"],
        reason=row["reason"],
        requested_at=row["requested_at"],
        attempts=int(row["attempts"]),
        account=Account.from_json(row["account"]) if row["account"] else None,
        idempotency_key=row["idempotency_key"],
        batch_id=row["batch_id"],
        undoes_action_id=row["undoes_action_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        available_at=row["available_at"],
        lease_owner=row["lease_owner"],
        result=row["result"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        state_before=AccountState.from_json(row["state_before"]) if row["state_before"] else None,
        provider_request_id=row["provider_request_id"],
        parameters=dict(row["parameters"] or {}),
        history=_history_from_json(row["history"]),
        after_action_id=row["after_action_id"],
        playbook=row["playbook"],
        approval_reason=row["approval_reason"],
        approved_by=row["approved_by"],
    )


def restore_state_of(row: RowMapping) -> AccountState | None:
    raw = row["restore_state"]
    return AccountState.from_json(raw) if raw else None


def _new_row(item: NewAction, now: datetime, approval_deadline: datetime | None) -> dict[str, Any]:
    final = item.status.is_final
    status = item.status
    available = item.not_before or now
    if item.approval_reason and status is ActionStatus.QUEUED:
        # While awaiting approval, available_at is the deadline after which the request expires.
        status, available = ActionStatus.AWAITING_APPROVAL, approval_deadline or now
    return {
        "type": item.type,
        "provider": item.provider,
        "target": item.target,
        "account": item.account.to_json() if item.account else None,
        "account_id": item.account.id if item.account else None,
        "requested_by": item.requested_by,
        "reason": item.reason,
        "idempotency_key": item.idempotency_key,
        "batch_id": item.batch_id,
        "undoes_action_id": item.undoes_action_id,
        "status": status.value,
        "attempts": 0,
        "requested_at": now,
        "finished_at": now if final else None,
        "available_at": available,
        "restore_state": item.restore_state.to_json() if item.restore_state else None,
        "parameters": dict(item.parameters),
        "error_code": item.error_code,
        "error_message": item.error_message,
        "history": [],
        "after_action_id": item.after_action_id,
        "playbook": item.playbook,
        "approval_reason": item.approval_reason,
    }


def _requested_event(action: Action) -> AuditEvent:
    name = "approval.requested" if action.status is ActionStatus.AWAITING_APPROVAL else "action.requested"
    return action_event(name, action, action.requested_by, approval_reason=action.approval_reason)


class ActionStore:
    """All reads and writes of actions. Methods are async and each runs in its own transaction."""

    def __init__(self, engine: AsyncEngine, recorder: EventRecorder | None = None) -> None:
        self.engine = engine
        self.recorder = recorder

    async def _record(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        if self.recorder is not None and events:
            await self.recorder.record_in(conn, events)

    def _after_commit(self, events: Sequence[AuditEvent]) -> None:
        if self.recorder is not None and events:
            self.recorder.after_commit(events)

    async def enqueue(
        self, items: Sequence[NewAction], now: datetime, approval_deadline: datetime | None = None
    ) -> list[Action]:
        """Insert the actions in one transaction, in order. An item whose idempotency key is
        already taken yields the existing action instead of a second one. Items that need
        approval wait in awaiting_approval until `approval_deadline`."""
        for _ in range(3):  # a concurrent insert of the same key loses the race: read it back
            try:
                async with self.engine.begin() as conn:
                    out, events = await self._enqueue(conn, items, now, approval_deadline)
                self._after_commit(events)
                return out
            except IntegrityError:
                continue
        raise Conflict("the same idempotency key is being used concurrently; try again")

    async def _enqueue(
        self,
        conn: AsyncConnection,
        items: Sequence[NewAction],
        now: datetime,
        approval_deadline: datetime | None,
    ) -> tuple[list[Action], list[AuditEvent]]:
        keys = [i.idempotency_key for i in items if i.idempotency_key]
        existing: dict[str, Action] = {}
        if keys:
            rows = await conn.execute(select(actions).where(actions.c.idempotency_key.in_(keys)))
            existing = {r["idempotency_key"]: row_to_action(r) for r in rows.mappings()}
        fresh = [i for i in items if not (i.idempotency_key and i.idempotency_key in existing)]
        inserted: list[Action] = []
        events: list[AuditEvent] = []
        if fresh:
            result = await conn.execute(
                actions.insert().returning(*actions.c, sort_by_parameter_order=True),
                [_new_row(i, now, approval_deadline) for i in fresh],
            )
            inserted = [row_to_action(r) for r in result.mappings()]
            events = [_requested_event(a) for a in inserted]
            await self._record(conn, events)
        out: list[Action] = []
        fresh_iter = iter(inserted)
        fresh_ids = {a.id for a in inserted}  # an action found by its idempotency key keeps its links
        for item in items:
            if item.idempotency_key and item.idempotency_key in existing:
                out.append(existing[item.idempotency_key])
            else:
                out.append(next(fresh_iter))
        links = [
            {
                "b_id": out[n].id,
                "b_after": out[item.after_index].id if item.after_index is not None else item.after_action_id,
                "b_undoes": out[item.undoes_index].id
                if item.undoes_index is not None
                else item.undoes_action_id,
            }
            for n, item in enumerate(items)
            if (item.after_index is not None or item.undoes_index is not None) and out[n].id in fresh_ids
        ]
        if links:  # order within a playbook, timed undo: ids are known only after the insert
            await conn.execute(
                update(actions)
                .where(actions.c.id == bindparam("b_id"))
                .values(after_action_id=bindparam("b_after"), undoes_action_id=bindparam("b_undoes")),
                links,
            )
            by_id = {link["b_id"]: link for link in links}
            out = [
                replace(a, after_action_id=by_id[a.id]["b_after"], undoes_action_id=by_id[a.id]["b_undoes"])
                if a.id in by_id
                else a
                for a in out
            ]
        return out, events

    async def get(self, action_id: int) -> Action:
        """One action; NotFound if there is none with that id."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(actions).where(actions.c.id == action_id))).mappings().first()
        if row is None:
            raise NotFound(f"no action with id {action_id}")
        return row_to_action(row)

    async def get_restore_state(self, action_id: int) -> AccountState | None:
        """For an undo action: the state it must put back."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(actions.c.restore_state).where(actions.c.id == action_id)))
                .mappings()
                .first()
            )
        return restore_state_of(row) if row else None

    def _filtered(self, query: Select[Any], flt: ActionFilter) -> Select[Any]:
        c = actions.c
        if flt.statuses:
            query = query.where(c.status.in_([s.value for s in flt.statuses]))
        if flt.type:
            query = query.where(c.type == flt.type)
        if flt.provider:
            query = query.where(c.provider == flt.provider)
        if flt.target:
            query = query.where(or_(c.target == flt.target, c.account_id == flt.target))
        if flt.requested_by:
            query = query.where(c.requested_by == flt.requested_by)
        if flt.batch_id:
            query = query.where(c.batch_id == flt.batch_id)
        if flt.since:
            query = query.where(c.requested_at >= flt.since)
        if flt.until:
            query = query.where(c.requested_at < flt.until)
        return query

    async def list_actions(
        self, flt: ActionFilter, *, limit: int = 100, before_id: int | None = None
    ) -> list[Action]:
        """Newest first; pass the last id seen as `before_id` for the next page."""
        query = self._filtered(select(actions), flt).order_by(actions.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(actions.c.id < before_id)
        async with self.engine.connect() as conn:
            return [row_to_action(r) for r in (await conn.execute(query)).mappings()]

    async def count_by_status(self, flt: ActionFilter) -> dict[ActionStatus, int]:
        """How many actions match, per status (for batch progress)."""
        query = self._filtered(select(actions.c.status, func.count()).group_by(actions.c.status), flt)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {ActionStatus(status): int(n) for status, n in rows}

    async def claim_next_actions(
        self, worker: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[tuple[Action, AccountState | None]]:
        """Take up to `limit` due actions (queued and due, or running with an expired lease),
        marking them running under this worker's lease. Returns each with its restore state."""
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
        if self.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        # On SQLite the single UPDATE statement is atomic: writers are serialized by the database.
        stmt = (
            update(actions)
            .where(c.id.in_(due.scalar_subquery()))
            .values(
                status=ActionStatus.RUNNING.value,
                lease_owner=worker,
                available_at=lease_until,
                attempts=c.attempts + 1,
                started_at=func.coalesce(c.started_at, now),
            )
            .returning(*actions.c)
        )
        async with self.engine.begin() as conn:
            rows = (await conn.execute(stmt)).mappings().all()
        claimed = [(row_to_action(r), restore_state_of(r)) for r in rows]
        claimed.sort(key=lambda pair: pair[0].id)
        return claimed

    async def renew_leases(self, worker: str, action_ids: Sequence[int], lease_until: datetime) -> None:
        """Extend the lease of actions this worker still holds."""
        if not action_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(actions)
                .where(
                    actions.c.id.in_(list(action_ids)),
                    actions.c.lease_owner == worker,
                    actions.c.status == ActionStatus.RUNNING.value,
                )
                .values(available_at=lease_until)
            )

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
                "b_account_id": i.account.id,
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
            # Last, so the audit chain's lock is held only for the append and the commit.
            await self._record(conn, events)
        self._after_commit(events)

    async def reschedule(self, worker: str, items: Sequence[Retry]) -> None:
        """Put transiently failed actions back in the queue until their retry time."""
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

    async def cancel(self, action_id: int, now: datetime, cancelled_by: str) -> Action:
        """Cancel a queued action; Conflict if it already runs or ended."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(actions)
                .where(actions.c.id == action_id, actions.c.status == ActionStatus.QUEUED.value)
                .values(
                    status=ActionStatus.CANCELLED.value,
                    finished_at=now,
                    error_code="cancelled",
                    error_message=f"cancelled by {cancelled_by}",
                )
                .returning(*actions.c)
            )
            row = result.mappings().first()
            events = [action_event("action.cancelled", row_to_action(row), cancelled_by, now)] if row else []
            await self._record(conn, events)
        self._after_commit(events)
        if row is not None:
            return row_to_action(row)
        current = await self.get(action_id)
        raise Conflict(f"action {action_id} is {current.status.value}; only a queued action can be cancelled")

    async def find_undo(self, action_id: int) -> Action | None:
        """The live or completed undo of an action, if one was requested."""
        query = (
            select(actions)
            .where(
                actions.c.undoes_action_id == action_id,
                actions.c.status.in_(
                    [ActionStatus.QUEUED.value, ActionStatus.RUNNING.value, ActionStatus.COMPLETED.value]
                ),
            )
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return row_to_action(row) if row else None

    async def list_by_idempotency_keys(self, keys: Sequence[str]) -> list[Action]:
        """Actions already requested with any of these keys."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(actions).where(actions.c.idempotency_key.in_(list(keys))))
            return [row_to_action(r) for r in rows.mappings()]

    async def get_many(self, action_ids: Sequence[int]) -> dict[int, Action]:
        """Actions by id (those that exist)."""
        if not action_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(actions).where(actions.c.id.in_(list(action_ids))))
            return {int(r["id"]): row_to_action(r) for r in rows.mappings()}

    async def latest_playbook_run(self, account_ids: Sequence[str], excluding: str) -> list[Action]:
        """Every action of the newest playbook run (other than `excluding`) touching these accounts."""
        c = actions.c
        newest = (
            select(c.batch_id)
            .where(c.account_id.in_(list(account_ids)), c.playbook.is_not(None), c.playbook != excluding)
            .order_by(c.id.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            batch = (await conn.execute(newest)).scalar_one_or_none()
            if batch is None:
                return []
            rows = await conn.execute(
                select(actions).where(c.batch_id == batch, c.account_id.in_(list(account_ids))).order_by(c.id)
            )
            return [row_to_action(r) for r in rows.mappings()]

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
            events = [action_event("approval.expired", a, "clampdown", now) for a in expired]
            await self._record(conn, events)
        self._after_commit(events)
        return expired

    async def decide_approval(
        self, action_ids: Sequence[int], approver: str, approve: bool, now: datetime, note: str | None
    ) -> list[Action]:
        """Approve (queue now) or reject (cancel) actions still awaiting approval."""
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
            name = "approval.approved" if approve else "approval.rejected"
            events = [action_event(name, a, approver, now, note=note) for a in decided]
            await self._record(conn, events)
        self._after_commit(events)
        return decided
