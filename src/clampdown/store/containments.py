"""Containment records: created with their steps in one transaction, superseding the person's
open containment; released with their release steps in one transaction, cancelling the timers
that are no longer the latest word."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName, action_event, containment_event
from clampdown.db.tables import actions, containment_accounts, containments
from clampdown.errors import NotFound
from clampdown.limits import MAX_ACCOUNT_ID, fit_key
from clampdown.model import (
    Account,
    Action,
    ActionStatus,
    Containment,
    ContainmentState,
    StepRole,
    restore_point,
)
from clampdown.store.actions import ActionStore, NewAction, row_to_action
from clampdown.store.recording import RecordingStore

_OPEN = tuple(s.value for s in ContainmentState if s.is_open)
_LIVE = (ActionStatus.QUEUED.value, ActionStatus.AWAITING_APPROVAL.value)


def _key(account_id: str) -> str:
    """An account id as stored for lookups (a long one hashed to fit, as in actions.account_id)."""
    return fit_key(account_id, MAX_ACCOUNT_ID)


@dataclass(frozen=True)
class NewContainment:
    person: str
    playbook: str
    requested_by: str
    reason: str
    accounts: tuple[Account, ...]
    state: ContainmentState
    until: datetime | None = None
    batch_id: str | None = None
    notes: tuple[str, ...] = ()
    incident: str | None = None  # its actions carry it too (the service sets it on them)


def _containment(row: RowMapping, members: Sequence[Action] = ()) -> Containment:
    return Containment(
        id=int(row["id"]),
        person=row["person"],
        playbook=row["playbook"],
        requested_by=row["requested_by"],
        reason=row["reason"],
        state=ContainmentState(row["state"]),
        created_at=row["created_at"],
        accounts=tuple(Account.from_json(a) for a in row["accounts"] or ()),
        until=row["until"],
        batch_id=row["batch_id"],
        supersedes_id=row["supersedes_id"],
        superseded_by_id=row["superseded_by_id"],
        ended_at=row["ended_at"],
        ended_by=row["ended_by"],
        end_reason=row["end_reason"],
        notes=tuple(row["notes"] or ()),
        incident=row["incident"],
        actions=tuple(members),
    )


class ContainmentStore(RecordingStore):
    """Reads and lifecycle writes of containments; each method runs in its own transaction."""

    def __init__(self, actions_store: ActionStore) -> None:
        super().__init__(actions_store.engine, actions_store.recorder)
        self._actions = actions_store

    async def _members(self, conn: AsyncConnection, ids: Sequence[int]) -> dict[int, list[Action]]:
        found: dict[int, list[Action]] = {i: [] for i in ids}
        if not ids:
            return found
        rows = await conn.execute(
            select(actions).where(actions.c.containment_id.in_(list(ids))).order_by(actions.c.id)
        )
        for row in rows.mappings():
            found[int(row["containment_id"])].append(row_to_action(row))
        return found

    async def _read(self, conn: AsyncConnection, query: Any) -> list[Containment]:
        rows = (await conn.execute(query)).mappings().all()
        members = await self._members(conn, [int(r["id"]) for r in rows])
        return [_containment(r, members[int(r["id"])]) for r in rows]

    async def get(self, containment_id: int) -> Containment:
        """One containment with its actions; NotFound if there is none with that id."""
        async with self.engine.connect() as conn:
            found = await self._read(conn, select(containments).where(containments.c.id == containment_id))
        if not found:
            raise NotFound(f"no containment with id {containment_id}")
        return found[0]

    async def find(
        self,
        *,
        states: Sequence[ContainmentState] = (),
        account_ids: Sequence[str] = (),
        limit: int = 100,
        before_id: int | None = None,
    ) -> list[Containment]:
        """Newest first; `account_ids`: only containments covering any of these accounts."""
        query = select(containments).order_by(containments.c.id.desc()).limit(limit)
        if states:
            query = query.where(containments.c.state.in_([s.value for s in states]))
        if account_ids:
            covering = select(containment_accounts.c.containment_id).where(
                containment_accounts.c.account_id.in_([_key(a) for a in account_ids])
            )
            query = query.where(containments.c.id.in_(covering))
        if before_id is not None:
            query = query.where(containments.c.id < before_id)
        async with self.engine.connect() as conn:
            return await self._read(conn, query)

    async def chain(self, newest: Sequence[Containment]) -> list[Containment]:
        """These containments and every one they superseded, newest first: what a release undoes."""
        found = {c.id: c for c in newest}
        frontier = list(found)
        async with self.engine.connect() as conn:
            while frontier:
                older = await self._read(
                    conn, select(containments).where(containments.c.superseded_by_id.in_(frontier))
                )
                frontier = [c.id for c in older if c.id not in found]
                found.update({c.id: c for c in older})
        return sorted(found.values(), key=lambda c: c.id, reverse=True)

    async def active_holders(self, account_ids: Sequence[str]) -> dict[str, list[int]]:
        """For each account, the active containments that hold it: a release, undo or timed release
        of an older containment must not hand the account back while a newer one holds it."""
        if not account_ids:
            return {}
        raw = {_key(a): a for a in account_ids}  # stored as a key that fits; answered as given
        query = (
            select(containment_accounts.c.account_id, containments.c.id)
            .join(containments, containments.c.id == containment_accounts.c.containment_id)
            .where(
                containment_accounts.c.account_id.in_(sorted(raw)),
                containments.c.state == ContainmentState.ACTIVE.value,
            )
        )
        found: dict[str, list[int]] = {}
        async with self.engine.connect() as conn:
            for account_id, containment_id in (await conn.execute(query)).all():
                found.setdefault(raw[str(account_id)], []).append(int(containment_id))
        return found

    async def adopt_by(self, ended: int, newer: int) -> None:
        """The worker did not hand an account back because `newer` holds it: `newer` carries it."""
        async with self.engine.begin() as conn:
            await adopt(conn, [ended], newer)

    async def states_of(
        self, containment_ids: Sequence[int]
    ) -> dict[int, tuple[ContainmentState, int | None]]:
        """(state, superseded by) of each containment, for the worker's check before a timed release."""
        if not containment_ids:
            return {}
        query = select(containments.c.id, containments.c.state, containments.c.superseded_by_id).where(
            containments.c.id.in_(list(containment_ids))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {int(i): (ContainmentState(s), by) for i, s, by in rows}

    async def record_drift(
        self,
        containment_id: int,
        note: str,
        event: AuditEvent,
        items: Sequence[NewAction],
        now: datetime,
        approval_deadline: datetime | None,
    ) -> list[Action] | None:
        """Note a drift on an active containment, record its event and queue `items` (the steps
        applied again) in the containment, in one transaction; None (nothing written) if the
        containment is no longer active or the same drift is noted already."""
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    select(containments.c.state, containments.c.notes)
                    .where(containments.c.id == containment_id)
                    .with_for_update()
                )
            ).one_or_none()
            if row is None or row.state != ContainmentState.ACTIVE.value or note in (row.notes or ()):
                return None
            await conn.execute(
                update(containments)
                .where(containments.c.id == containment_id)
                .values(notes=[*(row.notes or ()), note])
            )
            await self._record(conn, [event])
            role = StepRole.STEP.value
            linked = [replace(i, containment_id=containment_id, containment_role=role) for i in items]
            queued, requested = await self._actions.enqueue_in(conn, linked, now, approval_deadline)
        self._after_commit([event, *requested])
        return queued

    async def create(
        self,
        new: NewContainment,
        items: Sequence[NewAction],
        now: datetime,
        approval_deadline: datetime | None,
    ) -> Containment:
        """Write the containment and its actions in one transaction. An active containment
        supersedes the person's open ones at once; one awaiting approval does so when approved
        (until then the older one still holds, and it still holds if the request is rejected)."""
        account_ids = sorted({_key(a.id) for a in new.accounts})
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(containments)
                .values(
                    person=new.person,
                    playbook=new.playbook,
                    requested_by=new.requested_by,
                    reason=new.reason,
                    state=new.state.value,
                    created_at=now,
                    accounts=[a.to_json() for a in new.accounts],
                    until=new.until,
                    batch_id=new.batch_id,
                    notes=list(new.notes),
                    incident=new.incident,
                )
                .returning(containments.c.id)
            )
            containment_id = int(result.scalar_one())
            if account_ids:
                await conn.execute(
                    insert(containment_accounts),
                    [{"containment_id": containment_id, "account_id": a} for a in account_ids],
                )
            linked = [replace(i, containment_id=containment_id) for i in items]
            _, requested = await self._actions.enqueue_in(conn, linked, now, approval_deadline)
            events: list[AuditEvent] = []
            if new.state is ContainmentState.ACTIVE:
                events = await supersede_older(conn, containment_id, now)
                await self._record(conn, events)
            record = await self._read(conn, select(containments).where(containments.c.id == containment_id))
            created = containment_event(EventName.CONTAINMENT_CREATED, record[0], new.requested_by, now)
            await self._record(conn, [created])
        self._after_commit([*events, *requested, created])
        return record[0]

    async def release(
        self,
        chain: Sequence[Containment],
        items: Sequence[NewAction],
        released_by: str,
        reason: str,
        now: datetime,
        approval_deadline: datetime | None,
    ) -> Containment:
        """End the chain's open containments as released, cancel what of the chain has not run yet
        (timers, undos, steps still queued or awaiting approval), queue the release steps
        (pointing to the newest containment), all in one transaction."""
        ids = [c.id for c in chain]
        newest = chain[0]
        still_open = [c.id for c in chain if c.state.is_open]
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(containments)
                .where(containments.c.id.in_(still_open), containments.c.state.in_(_OPEN))
                .values(
                    state=ContainmentState.RELEASED.value,
                    ended_at=now,
                    ended_by=released_by,
                    end_reason=reason,
                )
            )
            if changed.rowcount != len(still_open):
                raise NotFound(
                    f"containment {newest.id} is no longer open: it was released or superseded meanwhile"
                )
            events = await cancel_live(
                conn,
                ids,
                (StepRole.TIMER, StepRole.UNDO, StepRole.STEP),
                now,
                "released",
                f"released early by {released_by}: {reason}",
                released_by,
            )
            await self._record(conn, events)
            linked = [replace(i, containment_id=newest.id) for i in items]
            _, requested = await self._actions.enqueue_in(conn, linked, now, approval_deadline)
            record = await self._read(conn, select(containments).where(containments.c.id == newest.id))
            released = containment_event(EventName.CONTAINMENT_RELEASED, record[0], released_by, now)
            await self._record(conn, [released])
        self._after_commit([*events, *requested, released])
        return record[0]


async def settle_after_approval(
    conn: AsyncConnection, containment_ids: Sequence[int], now: datetime
) -> list[AuditEvent]:
    """A containment awaiting approval becomes active once none of its steps awaits approval and
    one of them was approved, superseding the person's older open ones then; cancelled once every
    step was cancelled (rejected or expired). Returns the events to record."""
    ids = sorted(set(containment_ids))
    if not ids:
        return []
    step = actions.alias("step")
    role_step = step.c.containment_role == StepRole.STEP.value
    waiting = (
        select(step.c.id)
        .where(
            step.c.containment_id == containments.c.id,
            role_step,
            step.c.status == ActionStatus.AWAITING_APPROVAL.value,
        )
        .exists()
    )
    going = (
        select(step.c.id)
        .where(
            step.c.containment_id == containments.c.id,
            role_step,
            step.c.status != ActionStatus.CANCELLED.value,
        )
        .exists()
    )
    pending = containments.c.state == ContainmentState.AWAITING_APPROVAL.value
    activated = await conn.execute(
        update(containments)
        .where(containments.c.id.in_(ids), pending, ~waiting, going)
        .values(state=ContainmentState.ACTIVE.value)
        .returning(containments.c.id)
    )
    events: list[AuditEvent] = []
    for (containment_id,) in activated.all():
        events += await supersede_older(conn, int(containment_id), now)
    await conn.execute(
        update(containments)
        .where(containments.c.id.in_(ids), pending, ~waiting, ~going)
        .values(state=ContainmentState.CANCELLED.value, end_reason="no step was approved", ended_at=now)
    )
    return events


async def expire_after_timers(conn: AsyncConnection, containment_ids: Sequence[int], now: datetime) -> None:
    """An open containment whose timed releases have all ended has expired."""
    ids = sorted(set(containment_ids))
    if not ids:
        return
    timer = actions.alias("timer")
    live = (
        select(timer.c.id)
        .where(
            timer.c.containment_id == containments.c.id,
            timer.c.containment_role == StepRole.TIMER.value,
            timer.c.status.in_([*_LIVE, ActionStatus.RUNNING.value]),
        )
        .exists()
    )
    await conn.execute(
        update(containments)
        .where(containments.c.id.in_(ids), containments.c.state.in_(_OPEN), ~live)
        .values(
            state=ContainmentState.EXPIRED.value,
            ended_at=now,
            ended_by="timer",
            end_reason="its until passed: the timed release ran",
        )
    )


async def cancel_live(
    conn: AsyncConnection,
    containment_ids: Sequence[int],
    roles: Sequence[StepRole],
    now: datetime,
    code: str,
    message: str,
    actor: str,
) -> list[AuditEvent]:
    rows = await conn.execute(
        update(actions)
        .where(
            actions.c.containment_id.in_(list(containment_ids)),
            actions.c.containment_role.in_([r.value for r in roles]),
            actions.c.status.in_(_LIVE),
            # Never claimed: one tried before may have changed the account; it finishes, and a
            # release queues its undo after it.
            actions.c.attempts == 0,
        )
        .values(status=ActionStatus.CANCELLED.value, finished_at=now, error_code=code, error_message=message)
        .returning(*actions.c)
    )
    return [action_event(EventName.ACTION_CANCELLED, row_to_action(r), actor, now) for r in rows.mappings()]


async def supersede_older(conn: AsyncConnection, containment_id: int, now: datetime) -> list[AuditEvent]:
    """The person's other open containments, older than this one, are superseded by it: their
    timers, and their steps not yet run, are cancelled; their changed steps are carried by it (a
    release undoes them). Returns the cancellations' events, for the caller to record."""
    this = (
        (await conn.execute(select(containments).where(containments.c.id == containment_id))).mappings().one()
    )
    mine = select(containment_accounts.c.account_id).where(
        containment_accounts.c.containment_id == containment_id
    )
    covering = select(containment_accounts.c.containment_id).where(
        containment_accounts.c.account_id.in_(mine)
    )
    rows = await conn.execute(
        select(containments.c.id)
        .where(
            containments.c.id.in_(covering),
            containments.c.id < containment_id,
            containments.c.state.in_(_OPEN),
        )
        .order_by(containments.c.id.desc())
    )
    older = [int(r[0]) for r in rows]
    # A containment that ended but is still handing accounts back (a release or undo not yet
    # done) is carried too: the new one is the latest word, its hand-backs are cancelled here
    # or by the worker, and the new one's release undoes its steps instead.
    live = [ActionStatus.QUEUED.value, ActionStatus.AWAITING_APPROVAL.value, ActionStatus.RUNNING.value]
    handing_back = select(actions.c.containment_id).where(
        actions.c.containment_role.in_([StepRole.RELEASE.value, StepRole.UNDO.value, StepRole.TIMER.value]),
        actions.c.status.in_(live),
    )
    ended = await conn.execute(
        select(containments.c.id).where(
            containments.c.id.in_(covering),
            containments.c.id < containment_id,
            containments.c.state.not_in(_OPEN),
            containments.c.superseded_by_id.is_(None),
            containments.c.id.in_(handing_back),
        )
    )
    releasing = [int(r[0]) for r in ended]
    events: list[AuditEvent] = []
    if releasing:
        await adopt(conn, releasing, containment_id)
        events += await cancel_live(
            conn, releasing, (StepRole.RELEASE, StepRole.UNDO, StepRole.TIMER), now, "superseded",
            f"not handed back: containment {containment_id} ({this['reason']}) holds the account now",
            this["requested_by"],
        )  # fmt: skip
    if not older:
        return events
    await conn.execute(
        update(containments)
        .where(containments.c.id.in_(older))
        .values(
            state=ContainmentState.SUPERSEDED.value,
            superseded_by_id=containment_id,
            ended_at=now,
            ended_by=this["requested_by"],
            end_reason=f"superseded by containment {containment_id}: {this['reason']}",
        )
    )
    await conn.execute(
        update(containments).where(containments.c.id == containment_id).values(supersedes_id=older[0])
    )
    await _carry_timers(conn, containment_id, older)
    return events + await cancel_live(
        conn,
        older,
        (StepRole.TIMER, StepRole.STEP, StepRole.UNDO),
        now,
        "superseded",
        f"superseded by containment {containment_id} ({this['reason']}): "
        "the newer containment is the latest word",
        this["requested_by"],
    )


async def _carry_timers(conn: AsyncConnection, containment_id: int, older: Sequence[int]) -> None:
    """The newer containment's timed releases release what the person's containment holds: a
    timer whose step repeats a change an older (superseded) step made points at that older step,
    to restore the state before it; otherwise a step that found the account already contained
    would leave the older change in place when `until` passes."""
    chain, frontier = set(older), list(older)
    while frontier:
        rows = await conn.execute(
            select(containments.c.id).where(containments.c.superseded_by_id.in_(frontier))
        )
        frontier = [int(r[0]) for r in rows if int(r[0]) not in chain]
        chain.update(frontier)
    query = (
        select(actions)
        .where(actions.c.containment_id.in_(sorted(chain)), actions.c.containment_role == StepRole.STEP.value)
        .order_by(actions.c.id)
    )
    steps = [row_to_action(r) for r in (await conn.execute(query)).mappings()]
    changed = [s for s in steps if s.status is ActionStatus.COMPLETED and s.changed and s.account is not None]
    if not changed:
        return
    going = [ActionStatus.RUNNING.value, ActionStatus.COMPLETED.value]
    undone_query = select(actions.c.undoes_action_id).where(
        actions.c.undoes_action_id.in_([s.id for s in changed]), actions.c.status.in_(going)
    )
    undone = {int(r[0]) for r in await conn.execute(undone_query)}
    earliest: dict[tuple[str, str], Action] = {}
    for step in changed:
        if step.account is not None and step.id not in undone:
            earliest.setdefault((_key(step.account.id), step.type), step)  # as actions.account_id
    mine = actions.alias("mine")
    timers = await conn.execute(
        select(actions.c.id, mine.c.type, mine.c.account_id)
        .join(mine, mine.c.id == actions.c.undoes_action_id)
        .where(
            actions.c.containment_id == containment_id,
            actions.c.containment_role == StepRole.TIMER.value,
            actions.c.status == ActionStatus.QUEUED.value,
        )
    )
    for timer_id, step_type, account_id in timers.all():
        old = earliest.get((str(account_id), str(step_type)))
        if old is None:
            continue
        point = restore_point(old)
        state = point.to_json() if point else None
        await conn.execute(
            update(actions)
            .where(actions.c.id == timer_id)
            .values(undoes_action_id=old.id, restore_state=state)
        )


async def adopt(conn: AsyncConnection, ended: Sequence[int], newer: int) -> None:
    """Containments that ended while still handing accounts back join `newer`'s chain: its release
    undoes their changed steps (they keep their own state and history)."""
    await conn.execute(
        update(containments)
        .where(containments.c.id.in_(list(ended)), containments.c.superseded_by_id.is_(None))
        .values(superseded_by_id=newer)
    )
