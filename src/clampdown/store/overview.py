"""The overview's aggregates: counts over the actions and containments tables, each the count of a
set the action center (or the containments list) shows when filtered the same way.

Every query reads an index, whatever the size of the action center: a day's or a week's actions by
status from ix_actions_requested_at_status alone, failures by reason from it and the failed rows,
what rules did from ix_actions_source_id, containments from their own small table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, func, literal_column, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.db.tables import actions, containments
from clampdown.model import ActionSource, ActionStatus, ContainmentState, StepRole


@dataclass(frozen=True)
class RuleFiring:
    """One run of a detection rule that acted: its batch of actions."""

    batch_id: str
    reason: str  # "detection rule 'NAME'"
    at: datetime  # its first action's request time
    actions: int


@dataclass(frozen=True)
class ContainmentTiming:
    """A containment whose steps all completed: when it was asked for, and its last step done."""

    containment_id: int
    requested_at: datetime
    contained_at: datetime

    @property
    def seconds(self) -> float:
        return (self.contained_at - self.requested_at).total_seconds()


def _since(conn: AsyncConnection, since: datetime) -> ColumnElement[bool]:
    """Actions requested at or after `since`. SQLite keeps no statistics of values: told the range
    is rare, it reads it from ix_actions_requested_at_status instead of counting every action
    through the status index (0.9 s instead of 1 ms for a day at 1M, bench/overview_scale.py)."""
    window = actions.c.requested_at >= since
    if conn.dialect.name != "sqlite":
        return window
    return func.likelihood(window, literal_column("0.0001"))


def _in_scope(instances: frozenset[str] | None) -> ColumnElement[bool]:
    """Actions in these directories (None: every one)."""
    return true() if instances is None else actions.c.instance.in_(sorted(instances))


class OverviewStore:
    """Read-only aggregates; each method runs in its own connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def actions_by_status(
        self, since: datetime, instances: frozenset[str] | None = None
    ) -> dict[ActionStatus, int]:
        """Actions requested at or after `since`, per status."""
        c = actions.c
        async with self.engine.connect() as conn:
            query = select(c.status, func.count()).where(_since(conn, since), _in_scope(instances))
            rows = (await conn.execute(query.group_by(c.status))).all()
        return {ActionStatus(status): int(n) for status, n in rows}

    async def failures_by_reason(
        self, since: datetime, instances: frozenset[str] | None = None
    ) -> list[tuple[str, int]]:
        """Failed actions requested at or after `since`, per error code, the most frequent first."""
        c = actions.c
        code = func.coalesce(c.error_code, "")
        failed = c.status == ActionStatus.FAILED.value
        async with self.engine.connect() as conn:
            query = select(code, func.count()).where(_since(conn, since), failed, _in_scope(instances))
            rows = (await conn.execute(query.group_by(code))).all()
        return sorted(((str(k), int(n)) for k, n in rows), key=lambda r: (-r[1], r[0]))

    async def rule_firings(
        self, since: datetime, instances: frozenset[str] | None = None, limit: int = 10
    ) -> tuple[int, list[RuleFiring]]:
        """How many actions detection rules requested since `since`, and their newest firings
        (one batch each, counted whole, as the action center lists the batch), newest first."""
        c = actions.c
        first = func.min(c.requested_at)
        async with self.engine.connect() as conn:
            from_rules = and_(c.source == ActionSource.RULE.value, _since(conn, since), _in_scope(instances))
            fired = select(c.batch_id).where(from_rules, c.batch_id.is_not(None)).distinct()
            query = (
                select(c.batch_id, func.min(c.reason), first, func.count())
                .where(c.batch_id.in_(fired), _in_scope(instances))
                .group_by(c.batch_id)
                .order_by(first.desc(), c.batch_id)
                .limit(limit)
            )
            total = (await conn.execute(select(func.count()).where(from_rules))).scalar_one()
            rows = (await conn.execute(query)).all()
        return int(total), [RuleFiring(str(b), str(r), at, int(n)) for b, r, at, n in rows]

    async def open_containments(self) -> int:
        """Containments stored as active (the list's "active", partly contained ones too)."""
        query = select(func.count()).where(containments.c.state == ContainmentState.ACTIVE.value)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def containment_timings(
        self, since: datetime, instances: frozenset[str] | None = None
    ) -> list[ContainmentTiming]:
        """Containments requested at or after `since` whose playbook steps all completed: when
        each was requested and when its last step completed. With `instances`, only those whose
        every step ran in one of them."""
        c = actions.c
        outside = (
            func.sum(case((c.instance.in_(sorted(instances)), 0), else_=1)) if instances is not None else None
        )
        done = func.sum(case((c.status == ActionStatus.COMPLETED.value, 1), else_=0))
        query = (
            select(containments.c.id, containments.c.created_at, func.max(c.finished_at))
            .join(actions, c.containment_id == containments.c.id)
            .where(
                containments.c.created_at >= since,
                c.containment_role == StepRole.STEP.value,
                c.source == ActionSource.PLAYBOOK.value,  # not a step the watch applied again later
            )
            .group_by(containments.c.id, containments.c.created_at)
            .having(done == func.count())
        )
        if outside is not None:
            query = query.having(outside == 0)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ContainmentTiming(int(i), at, last) for i, at, last in rows if last is not None]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The value below which `fraction` of `values` lie (nearest rank); None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-round(fraction * 1000) * len(ordered) // 1000))  # ceil(fraction * n)
    return ordered[min(rank, len(ordered)) - 1]
