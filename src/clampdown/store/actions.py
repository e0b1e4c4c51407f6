"""The actions table as the action center sees it: row mapping, enqueue, reads and cancel.

The lease protocol the workers use is in `store.queue`, approval decisions in `store.approvals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName, action_event, requested_event
from clampdown.db.tables import actions
from clampdown.errors import Conflict, NotFound
from clampdown.limits import MAX_ACCOUNT_ID, fit_key
from clampdown.model import (
    SEALED_DETAIL,
    Account,
    AccountState,
    Action,
    ActionFilter,
    ActionSource,
    ActionStatus,
    AttemptRecord,
)
from clampdown.store.database_time import database_now
from clampdown.store.recording import RecordingStore

_DUE = (ActionStatus.QUEUED.value, ActionStatus.RUNNING.value)
_FINAL = tuple(s.value for s in ActionStatus if s.is_final)


# A time range of at most this many actions is listed by the index on requested_at (SQLite).
NARROW_TIME = 5_000


@dataclass(frozen=True)
class PlannerHints:
    """What SQLite, which keeps no statistics of values, is told of a filter: it guesses a status
    holds a sixth of the table and a time range a quarter, and so walks the primary key, through
    all of it when fewer than a page match. Told the condition is rare, it takes the index."""

    live_statuses: bool = False  # only statuses not final: the work in hand, while final ones pile up
    narrow_time: bool = False  # a time range of at most NARROW_TIME actions


NO_HINTS = PlannerHints()


def _likely(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The condition, marked for SQLite's planner as true of few rows."""
    return func.likelihood(condition, literal_column("0.0001"))


def _time_window(flt: ActionFilter) -> ColumnElement[bool]:
    """The filter's range of requested_at (`since` and/or `until` set)."""
    c = actions.c
    bounds = [c.requested_at >= flt.since] if flt.since else []
    bounds += [c.requested_at < flt.until] if flt.until else []
    return and_(*bounds)


@dataclass(frozen=True)
class IdempotentRequest:
    """What an idempotency key covers: the body of the request first made with it. The same key
    with another body is a Conflict naming the first field that differs. None: not part of it."""

    type: str
    reason: str
    target: str | None = None  # a single request
    until: str | None = None  # ISO 8601, UTC
    request_approval: bool | None = None
    targets: str | None = None  # a bulk: the digest of its distinct targets
    target_count: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def difference(self, was: dict[str, Any]) -> str | None:
        """Why a request with this body may not reuse the key of `was` (a stored body), or None."""
        now = self.to_json()
        for name in ("type", "target", "targets", "reason", "until", "request_approval"):
            if name not in was and (name not in now or was.get("legacy")):
                continue
            before, after = was.get(name), now.get(name)
            if before == after:
                continue
            if name == "targets":
                return (
                    "idempotency key reused with different targets: was "
                    f"{was.get('target_count')} distinct targets, now {self.target_count} (or others)"
                )
            return (
                f"idempotency key reused with a different {name.replace('_', ' ')}: "
                f"was {_shown(before)}, now {_shown(after)}"
            )
        return None


def _shown(value: object) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _stored_request(row: RowMapping) -> dict[str, Any]:
    """The body a stored key covers; for an action keyed before bodies were recorded, its own fields."""
    if row["idempotency_request"]:
        return dict(row["idempotency_request"])
    legacy = {"type": row["type"], "reason": row["reason"], "legacy": True}
    return legacy if row["batch_id"] else {**legacy, "target": row["target"]}


@dataclass(frozen=True)
class NewAction:
    """An action to enqueue; written whole before anything runs."""

    type: str
    provider: str
    target: str
    requested_by: str
    reason: str
    account: Account | None = None
    idempotency_key: str | None = None  # the requester's own: unique per requested_by
    idempotent_request: IdempotentRequest | None = None  # what the key covers
    batch_id: str | None = None
    undoes_action_id: int | None = None
    restore_state: AccountState | None = None
    status: ActionStatus = ActionStatus.QUEUED
    error_code: str | None = None  # only for an action recorded as refused at once
    error_message: str | None = None
    after_index: int | None = None  # within one enqueue: runs after the item at this index
    undoes_index: int | None = None  # within one enqueue: undoes the item at this index
    after_action_id: int | None = None  # or after an action already stored
    playbook: str | None = None
    approval_reason: str | None = None  # set: the action waits in awaiting_approval
    approval_rules: tuple[str, ...] = ()  # the rules its approval covers
    approved_by: str | None = None  # only for an approval inherited from what it undoes
    not_before: datetime | None = None  # a timed release: not run before this time
    containment_id: int | None = None
    containment_role: str | None = None
    seal_key: str | None = None  # a secret this action makes is sealed to it
    instance: str | None = None  # default: the account's directory, else the one named after its kind
    source: ActionSource = ActionSource.MANUAL
    incident: str | None = None

    @property
    def where(self) -> str:
        """The configured directory it runs against."""
        return self.instance or (self.account.where if self.account else self.provider)


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
        history=_history_from_json(row["history"]),
        after_action_id=row["after_action_id"],
        playbook=row["playbook"],
        approval_reason=row["approval_reason"],
        approved_by=row["approved_by"],
        approval_rules=tuple(row["approval_rules"] or ()),
        containment_id=row["containment_id"],
        containment_role=row["containment_role"],
        seal_key=row["seal_key"],
        cancel_requested_by=row["cancel_requested_by"],
        instance=row["instance"] or row["provider"],
        source=ActionSource(row["source"] or ActionSource.MANUAL),
        incident=row["incident"],
    )


def restore_state_of(row: RowMapping) -> AccountState | None:
    raw = row["restore_state"]
    return AccountState.from_json(raw) if raw else None


def _new_row(
    item: NewAction, now: datetime, approval_deadline: datetime | None, due: datetime
) -> dict[str, Any]:
    """The row of a new action; `due` is when an action to run now is due, by the database's
    clock (the one claims compare with), so a requester whose clock runs ahead delays nothing."""
    final = item.status.is_final
    status = item.status
    available = item.not_before or due
    if item.approval_reason and status is ActionStatus.QUEUED:
        # While awaiting approval, available_at is the deadline after which the request expires.
        status, available = ActionStatus.AWAITING_APPROVAL, approval_deadline or now
    return {
        "type": item.type,
        "provider": item.provider,
        "target": item.target,
        "account": item.account.to_json() if item.account else None,
        "account_id": fit_key(item.account.id, MAX_ACCOUNT_ID) if item.account else None,
        "requested_by": item.requested_by,
        "reason": item.reason,
        "idempotency_key": item.idempotency_key,
        "idempotency_request": item.idempotent_request.to_json() if item.idempotent_request else None,
        "batch_id": item.batch_id,
        "undoes_action_id": item.undoes_action_id,
        "status": status.value,
        "attempts": 0,
        "requested_at": now,
        "finished_at": now if final else None,
        "available_at": available,
        "restore_state": item.restore_state.to_json() if item.restore_state else None,
        "error_code": item.error_code,
        "error_message": item.error_message,
        "history": [],
        "after_action_id": item.after_action_id,
        "playbook": item.playbook,
        "approval_reason": item.approval_reason,
        "approval_rules": list(item.approval_rules),
        "approved_by": item.approved_by,
        "containment_id": item.containment_id,
        "containment_role": item.containment_role,
        "seal_key": item.seal_key,
        "instance": item.where,
        "source": item.source.value,
        "incident": item.incident,
    }


def _check_same_request(item: NewAction, row: RowMapping) -> None:
    """Conflict if `item` reuses the key of `row` with another body."""
    if item.idempotent_request is None:
        return
    difference = item.idempotent_request.difference(_stored_request(row))
    if difference is not None:
        raise Conflict(difference)


class ActionStore(RecordingStore):
    """Requests and reads of actions. Methods are async and each runs in its own transaction."""

    async def enqueue(
        self, items: Sequence[NewAction], now: datetime, approval_deadline: datetime | None = None
    ) -> list[Action]:
        """Insert the actions in one transaction, in order. An item whose idempotency key is
        already taken yields the existing action instead of a second one. Items that need
        approval wait in awaiting_approval until `approval_deadline`."""
        for _ in range(3):  # a concurrent insert of the same key loses the race: read it back
            try:
                async with self.engine.begin() as conn:
                    out, events = await self.enqueue_in(conn, items, now, approval_deadline)
                self._after_commit(events)
                return out
            except IntegrityError:
                continue
        raise Conflict("the same idempotency key is being used concurrently; try again")

    async def enqueue_in(
        self,
        conn: AsyncConnection,
        items: Sequence[NewAction],
        now: datetime,
        approval_deadline: datetime | None,
    ) -> tuple[list[Action], list[AuditEvent]]:
        """`enqueue` inside the caller's transaction; the events are already recorded in it and
        are returned for `after_commit`."""
        keyed = {(i.requested_by, i.idempotency_key): i for i in items if i.idempotency_key}
        existing: dict[tuple[str, str | None], Action] = {}
        if keyed:
            c = actions.c
            rows = await conn.execute(
                select(actions).where(
                    c.idempotency_key.in_([k for _, k in keyed]),
                    c.requested_by.in_({r for r, _ in keyed}),
                )
            )
            for r in rows.mappings():
                mine = keyed.get((r["requested_by"], r["idempotency_key"]))
                if mine is None:
                    continue  # another requester's key, or another pair of this query's product
                _check_same_request(mine, r)
                existing[(r["requested_by"], r["idempotency_key"])] = row_to_action(r)

        def found(item: NewAction) -> Action | None:
            return existing.get((item.requested_by, item.idempotency_key)) if item.idempotency_key else None

        fresh = [i for i in items if found(i) is None]
        inserted: list[Action] = []
        events: list[AuditEvent] = []
        if fresh:
            due = await database_now(conn) if any(i.not_before is None for i in fresh) else now
            result = await conn.execute(
                actions.insert().returning(*actions.c, sort_by_parameter_order=True),
                [_new_row(i, now, approval_deadline, due) for i in fresh],
            )
            inserted = [row_to_action(r) for r in result.mappings()]
            events = [requested_event(a) for a in inserted]
            await self._record(conn, events)
        out: list[Action] = []
        fresh_iter = iter(inserted)
        fresh_ids = {a.id for a in inserted}  # an action found by its idempotency key keeps its links
        for item in items:
            out.append(found(item) or next(fresh_iter))
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

    async def enqueue_replacing(
        self, timer_id: int, item: NewAction, now: datetime, approval_deadline: datetime | None, by: str
    ) -> Action | None:
        """Cancel a timed release that has not started and queue `item` instead, in one
        transaction; None (nothing written) if the timer already started."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(actions)
                .where(actions.c.id == timer_id, actions.c.status == ActionStatus.QUEUED.value)
                .values(
                    status=ActionStatus.CANCELLED.value, finished_at=now, error_code="replaced",
                    error_message=f"replaced by an undo {by} asked for now",
                )
                .returning(*actions.c)
            )  # fmt: skip
            row = result.mappings().first()
            if row is None:
                return None
            cancelled = [action_event(EventName.ACTION_CANCELLED, row_to_action(row), by, now)]
            await self._record(conn, cancelled)
            out, events = await self.enqueue_in(conn, [item], now, approval_deadline)
        self._after_commit([*cancelled, *events])
        return out[0]

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

    def _filtered(self, query: Select[Any], flt: ActionFilter, hints: PlannerHints = NO_HINTS) -> Select[Any]:
        c = actions.c
        if flt.statuses:
            statuses = c.status.in_([s.value for s in flt.statuses])
            query = query.where(_likely(statuses) if hints.live_statuses else statuses)
        if flt.type:
            query = query.where(c.type == flt.type)
        if flt.provider:
            query = query.where(c.provider == flt.provider)
        if flt.instance:
            query = query.where(c.instance == flt.instance)
        if flt.instances is not None:
            query = query.where(c.instance.in_(sorted(flt.instances)))
        if flt.target:
            account_id = fit_key(flt.target, MAX_ACCOUNT_ID)  # as stored
            query = query.where(or_(c.target == flt.target, c.account_id == account_id))
        if flt.requested_by:
            query = query.where(c.requested_by == flt.requested_by)
        if flt.batch_id:
            query = query.where(c.batch_id == flt.batch_id)
        if flt.source:
            query = query.where(c.source == flt.source.value)
        if flt.incident:
            query = query.where(c.incident == flt.incident)
        if flt.error_code:
            query = query.where(c.error_code == flt.error_code)
        if flt.since or flt.until:
            window = _time_window(flt)
            query = query.where(_likely(window) if hints.narrow_time else window)
        return query

    def _newest(
        self, flt: ActionFilter, limit: int, before_id: int | None, hints: PlannerHints = NO_HINTS
    ) -> Select[Any]:
        query = self._filtered(select(actions), flt, hints).order_by(actions.c.id.desc()).limit(limit)
        return query if before_id is None else query.where(actions.c.id < before_id)

    async def _hints(self, conn: AsyncConnection, flt: ActionFilter) -> PlannerHints:
        """On SQLite, what the planner should be told of the filter. A time range is narrow if the
        index on requested_at holds at most NARROW_TIME actions in it (it reads no more to tell)."""
        if conn.dialect.name != "sqlite":
            return NO_HINTS
        live = bool(flt.statuses) and not any(s.is_final for s in flt.statuses)
        narrow = False
        if flt.since:
            inside = select(actions.c.id).where(_time_window(flt)).limit(NARROW_TIME + 1).subquery()
            found = (await conn.execute(select(func.count()).select_from(inside))).scalar_one()
            narrow = int(found) <= NARROW_TIME
        return PlannerHints(live_statuses=live, narrow_time=narrow)

    async def list_actions(
        self, flt: ActionFilter, *, limit: int = 100, before_id: int | None = None
    ) -> list[Action]:
        """Newest first; pass the last id seen as `before_id` for the next page."""
        async with self.engine.connect() as conn:
            hints = await self._hints(conn, flt)
            query = self._newest(flt, limit, before_id, hints)
            if flt.instances is not None and len(flt.instances) > 1:
                # The newest of each directory by its (instance, id) index, then the newest of those:
                # PostgreSQL cannot read that index in id order for `instance IN (...)`, and scans the
                # primary key instead, through every other directory's actions (all of them, when the
                # scope's actions are old).
                each = [
                    select(self._newest(replace(flt, instances=frozenset({name})), limit, before_id, hints)
                           .subquery())
                    for name in sorted(flt.instances)
                ]  # fmt: skip
                newest = union_all(*each).subquery()
                query = select(newest).order_by(newest.c.id.desc()).limit(limit)
            return [row_to_action(r) for r in (await conn.execute(query)).mappings()]

    async def count_by_status(self, flt: ActionFilter) -> dict[ActionStatus, int]:
        """How many actions match, per status (for batch progress)."""
        by_status = select(actions.c.status, func.count()).group_by(actions.c.status)
        async with self.engine.connect() as conn:
            query = self._filtered(by_status, flt, await self._hints(conn, flt))
            rows = (await conn.execute(query)).all()
        return {ActionStatus(status): int(n) for status, n in rows}

    async def count_by_type_and_status(self) -> list[tuple[str, str, int]]:
        """(type, status, how many) over the whole action center, for metrics."""
        query = select(actions.c.type, actions.c.status, func.count()).group_by(
            actions.c.type, actions.c.status
        )
        async with self.engine.connect() as conn:
            return [(str(t), str(s), int(n)) for t, s, n in (await conn.execute(query)).all()]

    async def cancel(self, action_id: int, now: datetime, cancelled_by: str) -> Action:
        """Cancel a queued action. One whose attempt runs now is marked: that attempt finishes (what
        it changed stands) and the action is then cancelled instead of retried. Conflict if it ended."""
        c = actions.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(actions)
                .where(c.id == action_id, c.status == ActionStatus.QUEUED.value)
                .values(
                    status=ActionStatus.CANCELLED.value,
                    finished_at=now,
                    error_code="cancelled",
                    error_message=f"cancelled by {cancelled_by}",
                )
                .returning(*actions.c)
            )
            row = result.mappings().first()
            name = EventName.ACTION_CANCELLED
            if row is None:
                result = await conn.execute(
                    update(actions)
                    .where(
                        c.id == action_id,
                        c.status == ActionStatus.RUNNING.value,
                        c.cancel_requested_by.is_(None),
                    )
                    .values(cancel_requested_by=cancelled_by)
                    .returning(*actions.c)
                )
                row = result.mappings().first()
                name = EventName.ACTION_CANCEL_REQUESTED
            events = [action_event(name, row_to_action(row), cancelled_by, now)] if row else []
            await self._record(conn, events)
        self._after_commit(events)
        if row is not None:
            return row_to_action(row)
        current = await self.get(action_id)
        if current.cancel_requested_by:
            return current  # asked already: the same answer again
        raise Conflict(
            f"action {action_id} is {current.status.value}; only a queued action can be cancelled "
            "(or a running one, which is then not retried)"
        )

    async def find_undo(self, action_id: int) -> Action | None:
        """The live or completed undo of an action, if one was requested."""
        query = (
            select(actions)
            .where(
                actions.c.undoes_action_id == action_id,
                actions.c.status.in_(
                    [
                        ActionStatus.AWAITING_APPROVAL.value,
                        ActionStatus.QUEUED.value,
                        ActionStatus.RUNNING.value,
                        ActionStatus.COMPLETED.value,
                    ]
                ),
            )
            .order_by(actions.c.id.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return row_to_action(row) if row else None

    async def find_idempotent(
        self, requested_by: str, idempotency_key: str, request: IdempotentRequest
    ) -> Action | None:
        """The action `requested_by` already requested with this key, or None; Conflict naming the
        difference if it was requested with another body."""
        c = actions.c
        query = select(actions).where(c.requested_by == requested_by, c.idempotency_key == idempotency_key)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        difference = request.difference(_stored_request(row))
        if difference is not None:
            raise Conflict(difference)
        return row_to_action(row)

    async def check_bulk_key(self, requested_by: str, batch_id: str, request: IdempotentRequest) -> None:
        """Conflict naming the difference if `requested_by` already made the keyed bulk `batch_id`
        (whole, or the chunks written before a failure) with another body: checked once, before
        any chunk of the new request is written."""
        c = actions.c
        query = (
            select(actions)
            .where(c.batch_id == batch_id, c.requested_by == requested_by, c.idempotency_key.is_not(None))
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        difference = request.difference(_stored_request(row)) if row is not None else None
        if difference is not None:
            raise Conflict(difference)

    async def hand_over_sealed(self, action_id: int, sealed: str) -> bool:
        """Remove the sealed secret of an action once its requester opened it; False if it was
        already taken (the secret is handed over once)."""
        async with self.engine.begin() as conn:
            query = select(actions.c.result).where(
                actions.c.id == action_id, actions.c.seal_key.is_not(None)
            ).with_for_update()  # fmt: skip
            result = (await conn.execute(query)).scalar_one_or_none()
            details = dict((result or {}).get("details") or {})
            if details.get(SEALED_DETAIL) != sealed:
                return False
            details.pop(SEALED_DETAIL)
            details["secret_handed_over"] = True
            done = await conn.execute(
                update(actions)
                .where(actions.c.id == action_id, actions.c.seal_key.is_not(None))
                .values(result={**(result or {}), "details": details}, seal_key=None)
            )
            return bool(done.rowcount)

    async def get_many(self, action_ids: Sequence[int]) -> dict[int, Action]:
        """Actions by id (those that exist)."""
        if not action_ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(actions).where(actions.c.id.in_(list(action_ids))))
            return {int(r["id"]): row_to_action(r) for r in rows.mappings()}
