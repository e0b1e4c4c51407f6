"""Custom detection rules: a query on a schedule whose new rows raise alerts and, if the rule says
so, request an action on each account found, as whoever last armed the rule (created or enabled
it) and through the normal RBAC."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from clampdown.audit.events import EventName, rule_event
from clampdown.auth.principal import Principal
from clampdown.auth.service import AuthService
from clampdown.catalog import get_action
from clampdown.errors import ClampdownError, Conflict, InvalidInput, NotFound
from clampdown.hunting.query import account_values, run_query
from clampdown.hunting.saved import clean_name
from clampdown.hunting.store import EventStore
from clampdown.permissions import HUNTING_READ
from clampdown.services.actions import ActionService

log = logging.getLogger(__name__)
MIN_INTERVAL_SECONDS = 60.0

_COLUMNS = (
    "id, name, query, owner, interval_seconds, action_type, account_column, enabled, last_run_at, armed_by"
)


@dataclass(frozen=True)
class DetectionRule:
    id: int
    name: str
    query: str
    owner: str
    interval_seconds: float
    action_type: str | None
    account_column: str | None
    enabled: bool
    last_run_at: datetime | None
    armed_by: str  # who last created or enabled it: the rule queries and acts with their rights

    def due(self, now: datetime) -> bool:
        return self.enabled and (
            self.last_run_at is None or now - self.last_run_at >= timedelta(seconds=self.interval_seconds)
        )


@dataclass(frozen=True)
class Alert:
    id: int
    rule_id: int
    row: dict[str, Any]
    account: str | None
    batch_id: str | None
    raised_at: datetime


@dataclass(frozen=True)
class RuleRun:
    """One evaluation: rows the query returned, the new ones alerted on, the batch requested."""

    rule: str
    rows: int
    new_alerts: int
    batch_id: str | None


def _rule(row: tuple[Any, ...]) -> DetectionRule:
    id_, name, query, owner, interval, action, column, enabled, last, armed_by = row
    return DetectionRule(
        int(id_), name, query, owner, float(interval), action, column, bool(enabled), last, armed_by
    )


def create_rule(
    store: EventStore,
    name: str,
    query: str,
    owner: str,
    interval_seconds: float,
    action_type: str | None = None,
    account_column: str | None = None,
) -> DetectionRule:
    """Store a new rule, enabled and armed by its owner; an action needs the column that holds the
    accounts."""
    if interval_seconds < MIN_INTERVAL_SECONDS:
        raise InvalidInput(f"interval_seconds: at least {MIN_INTERVAL_SECONDS:g}")
    if action_type is not None:
        get_action(action_type)
        if not account_column:
            raise InvalidInput("account_column: a rule that acts must name the column holding the accounts")
    with store.connect() as con:
        try:
            row = con.execute(
                "INSERT INTO clampdown_meta.rules (id, name, query, owner, interval_seconds, action_type,"
                " account_column, enabled, last_run_at, created_at, armed_by)"
                " VALUES (nextval('clampdown_meta.ids'), ?, ?, ?, ?, ?, ?, true, NULL, ?, ?)"
                f" RETURNING {_COLUMNS}",
                [
                    clean_name(name),
                    query,
                    owner,
                    interval_seconds,
                    action_type,
                    account_column,
                    datetime.now(UTC),
                    owner,
                ],
            ).fetchone()
        except duckdb.ConstraintException:
            raise Conflict(f"a detection rule named {name!r} exists already") from None
    assert row is not None
    return _rule(row)


def list_rules(store: EventStore) -> list[DetectionRule]:
    with store.connect() as con:
        return [
            _rule(r)
            for r in con.execute(f"SELECT {_COLUMNS} FROM clampdown_meta.rules ORDER BY name").fetchall()
        ]


def get_rule(store: EventStore, ref: str | int) -> DetectionRule:
    with store.connect() as con:
        rows = con.execute(
            f"SELECT {_COLUMNS} FROM clampdown_meta.rules WHERE name = ? OR CAST(id AS VARCHAR) = ?",
            [str(ref), str(ref)],
        ).fetchall()
    if not rows:
        raise NotFound(f"no detection rule {ref!r}")
    return _rule(rows[0])


def set_rule_enabled(store: EventStore, ref: str | int, enabled: bool, by: str) -> DetectionRule:
    """Switch a rule on or off; switching it on arms it as `by`, switching it off leaves who armed it."""
    rule = get_rule(store, ref)
    with store.connect() as con:
        con.execute(
            "UPDATE clampdown_meta.rules SET enabled = ?, armed_by = CASE WHEN ? THEN ? ELSE armed_by END"
            " WHERE id = ?",
            [enabled, enabled, by, rule.id],
        )
    return get_rule(store, rule.id)


def list_alerts(store: EventStore, rule_id: int | None = None, limit: int = 500) -> list[Alert]:
    with store.connect() as con:
        rows = con.execute(
            "SELECT id, rule_id, row_json, account, batch_id, raised_at FROM clampdown_meta.alerts"
            " WHERE ? IS NULL OR rule_id = ? ORDER BY id DESC LIMIT ?",
            [rule_id, rule_id, limit],
        ).fetchall()
    return [Alert(int(i), int(r), json.loads(j), a, b, t) for i, r, j, a, b, t in rows]


def _row_hash(columns: list[str], row: list[Any]) -> str:
    return hashlib.sha256(
        json.dumps(dict(zip(columns, row, strict=True)), sort_keys=True, default=str).encode()
    ).hexdigest()


def _new_rows(store: EventStore, rule_id: int, hashes: list[str]) -> set[str]:
    if not hashes:
        return set()
    with store.connect() as con:
        seen = con.execute(
            "SELECT row_hash FROM clampdown_meta.alerts WHERE rule_id = ? AND list_contains(?, row_hash)",
            [rule_id, hashes],
        ).fetchall()
    return set(hashes) - {h for (h,) in seen}


def _record(
    store: EventStore,
    rule: DetectionRule,
    alerts: list[tuple[str, dict[str, Any], str | None]],
    batch_id: str | None,
    now: datetime,
) -> None:
    with store.connect() as con:
        con.execute("BEGIN TRANSACTION")
        for row_hash, row, account in alerts:
            con.execute(
                "INSERT INTO clampdown_meta.alerts VALUES (nextval('clampdown_meta.ids'), ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [rule.id, row_hash, json.dumps(row, default=str), account, batch_id, now],
            )
        con.execute("UPDATE clampdown_meta.rules SET last_run_at = ? WHERE id = ?", [now, rule.id])
        con.execute("COMMIT")


async def armer_principal(auth: AuthService, username: str) -> Principal | None:
    """The current rights of whoever armed a rule (a disabled or deleted user has none)."""
    user = await auth.store.user_by_name(username)
    if user is None or user.disabled:
        return None
    return await auth.principal_for(user, "rule")


async def run_rule(
    rule: DetectionRule, store: EventStore, actions: ActionService, auth: AuthService
) -> RuleRun:
    """Evaluate one rule as whoever armed it, with their rights now: alert on rows never seen before,
    then act on their accounts."""
    now = datetime.now(UTC)
    armer = await armer_principal(auth, rule.armed_by)
    if armer is None or not armer.has(HUNTING_READ):
        raise InvalidInput(
            f"rule {rule.name!r}: {rule.armed_by!r}, who armed it, may no longer run hunting queries"
        )
    result = await asyncio.to_thread(run_query, store, rule.query)
    hashes = [_row_hash(result.columns, row) for row in result.rows]
    fresh = await asyncio.to_thread(_new_rows, store, rule.id, hashes)
    new: list[tuple[str, dict[str, Any], str | None]] = []
    column = rule.account_column
    index = result.columns.index(column) if column and column in result.columns else None
    for row_hash, row in zip(hashes, result.rows, strict=True):
        if row_hash in fresh:
            fresh.discard(row_hash)  # a row repeated within one run alerts once
            account = None if index is None or row[index] in (None, "") else str(row[index])
            new.append((row_hash, dict(zip(result.columns, row, strict=True)), account))
    batch_id = None
    if new and rule.action_type and column:
        targets = account_values(result.columns, [list(r.values()) for _, r, _ in new], column)
        if targets:
            key = f"rule-{rule.id}-" + hashlib.sha256("".join(h for h, _, _ in new).encode()).hexdigest()[:32]
            bulk = await actions.request_bulk(
                rule.action_type, targets, f"detection rule '{rule.name}'", armer, idempotency_key=key
            )
            batch_id = bulk.batch_id
    await asyncio.to_thread(_record, store, rule, new, batch_id, now)
    return RuleRun(rule.name, len(result.rows), len(new), batch_id)


async def run_due_rules(store: EventStore, actions: ActionService, auth: AuthService) -> list[RuleRun]:
    """Every enabled rule whose interval has passed; one failing rule does not stop the others."""
    runs = []
    now = datetime.now(UTC)
    for rule in await asyncio.to_thread(list_rules, store):
        if not rule.due(now):
            continue
        try:
            run = await run_rule(rule, store, actions, auth)
        except ClampdownError as exc:
            log.warning("detection rule %r failed: %s", rule.name, exc.message)
            await _audit_scheduled(auth, rule, error=exc.message)
            continue
        runs.append(run)
        if run.new_alerts or run.batch_id:  # a quiet run is not worth an entry a minute
            await _audit_scheduled(
                auth, rule, rows=run.rows, new_alerts=run.new_alerts, batch_id=run.batch_id
            )
    return runs


async def _audit_scheduled(auth: AuthService, rule: DetectionRule, **data: Any) -> None:
    """A scheduled run that alerted, acted or failed, recorded as done by whoever armed the rule."""
    event = rule_event(
        EventName.RULE_RUN, auth.clock.now(), rule.armed_by, rule.name,
        rule_id=rule.id, action_type=rule.action_type, armed_by=rule.armed_by, channel="schedule", **data,
    )  # fmt: skip
    await auth.record_events([event])
