"""Custom detection rules: a query on a schedule whose new rows raise alerts and, if the rule says
so, request an action on each account found, as whoever last armed the rule (created or enabled
it) and through the normal RBAC."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
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
from clampdown.model import ActionSource
from clampdown.permissions import HUNTING_READ
from clampdown.services.actions import ActionService, clean_target
from clampdown.services.playbooks import PlaybookService

log = logging.getLogger(__name__)
MIN_INTERVAL_SECONDS = 60.0
# A rule's action is an action type of the catalog, or "playbook:NAME": each person found is
# contained by that playbook (one containment each, through the policy gate like any other).
PLAYBOOK_PREFIX = "playbook:"
# What a run records of an error or of the rows it skipped, in characters: enough to act on, and
# short enough for the audit log and a list of rules.
MAX_RUN_NOTE = 1000
_REASON_SHOWN = 160

_COLUMNS = (
    "id, name, query, owner, interval_seconds, action_type, account_column, enabled, last_run_at, armed_by,"
    " last_run_error, last_run_skipped, last_run_note"
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
    last_run_error: str | None = None  # why the last run failed; None if it did not
    last_run_skipped: int = 0  # rows the last run alerted on but could not act on
    last_run_note: str | None = None  # "skipped N rows: <why>"

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
    skipped: str | None = None  # why its account was not acted on (a target the service refuses)


@dataclass(frozen=True)
class RuleRun:
    """One evaluation: rows the query returned, the new ones alerted on, the batch requested, and
    the new rows whose account could not be acted on (alerted on all the same)."""

    rule: str
    rows: int
    new_alerts: int
    batch_id: str | None
    skipped: int = 0
    note: str | None = None  # "skipped N rows: <why>"
    containment_ids: tuple[int, ...] = ()  # a rule that contains: the containments it started


def playbook_of(action_type: str | None) -> str | None:
    """The playbook a rule's action names ("playbook:contain" -> "contain"), or None."""
    if action_type and action_type.startswith(PLAYBOOK_PREFIX):
        return action_type[len(PLAYBOOK_PREFIX) :]
    return None


@dataclass(frozen=True)
class _NewAlert:
    row_hash: str
    row: dict[str, Any]
    account: str | None
    skipped: str | None  # why the account is not acted on


def _rule(row: tuple[Any, ...]) -> DetectionRule:
    id_, name, query, owner, interval, action, column, enabled, last, armed_by, error, skipped, note = row
    return DetectionRule(
        int(id_), name, query, owner, float(interval), action, column, bool(enabled), last, armed_by,
        error, int(skipped or 0), note,
    )  # fmt: skip


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
        if playbook_of(action_type) is None:
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
            "SELECT id, rule_id, row_json, account, batch_id, raised_at, skipped FROM clampdown_meta.alerts"
            " WHERE ? IS NULL OR rule_id = ? ORDER BY id DESC LIMIT ?",
            [rule_id, rule_id, limit],
        ).fetchall()
    return [Alert(int(i), int(r), json.loads(j), a, b, t, k) for i, r, j, a, b, t, k in rows]


def printable(text: str, limit: int) -> str:
    """`text` with control characters escaped (as Python writes them) and cut to `limit`
    characters: safe for a log line, the audit log (PostgreSQL's JSON takes no NUL) and a table."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def failure_text(exc: BaseException) -> str:
    """What a failed run records: a Clampdown error's message, else the exception's type and first
    line (a driver's error, a bug), never a stack trace."""
    if isinstance(exc, ClampdownError):
        return printable(exc.message, MAX_RUN_NOTE)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return printable(f"{type(exc).__name__}: {first}" if first else type(exc).__name__, MAX_RUN_NOTE)


def _skip_note(reasons: list[str]) -> str | None:
    """The note of a run: skipped N rows and why, each reason once; None if nothing was skipped."""
    if not reasons:
        return None
    counted = Counter(reasons)
    ordered = sorted(counted.items(), key=lambda item: (-item[1], item[0]))  # the same note for the same rows
    why = "; ".join(f"{r} ({n} rows)" if n > 1 else r for r, n in ordered)
    rows = "row" if len(reasons) == 1 else "rows"
    return printable(f"skipped {len(reasons)} {rows}: {why}", MAX_RUN_NOTE)


def _refusal(account: str | None) -> str | None:
    """Why the service would refuse `account` as a target (too long, a NUL...), or None."""
    if account is None:
        return None
    try:
        clean_target(account)
    except InvalidInput as exc:
        return printable(exc.message, _REASON_SHOWN)
    return None


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
    store: EventStore, rule: DetectionRule, alerts: list[_NewAlert], run: RuleRun, now: datetime
) -> None:
    with store.connect() as con:
        con.execute("BEGIN TRANSACTION")
        for a in alerts:
            con.execute(
                "INSERT INTO clampdown_meta.alerts (id, rule_id, row_hash, row_json, account, batch_id,"
                " raised_at, skipped) VALUES (nextval('clampdown_meta.ids'), ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                [
                    rule.id, a.row_hash, json.dumps(a.row, default=str), a.account,
                    None if a.skipped else run.batch_id, now, a.skipped,
                ],
            )  # fmt: skip
        con.execute(
            "UPDATE clampdown_meta.rules SET last_run_at = ?, last_run_error = NULL, last_run_skipped = ?,"
            " last_run_note = ? WHERE id = ?",
            [now, run.skipped, run.note, rule.id],
        )
        con.execute("COMMIT")


def _record_failure(store: EventStore, rule: DetectionRule, error: str, now: datetime) -> None:
    """A failed run still moves the rule's last run on: it waits its interval before the next try
    (its new rows are new again then), instead of failing again at once and forever."""
    with store.connect() as con:
        con.execute(
            "UPDATE clampdown_meta.rules SET last_run_at = ?, last_run_error = ?, last_run_skipped = 0,"
            " last_run_note = NULL WHERE id = ?",
            [now, error, rule.id],
        )


async def armer_principal(auth: AuthService, username: str) -> Principal | None:
    """The current rights of whoever armed a rule (a disabled or deleted user has none)."""
    user = await auth.store.user_by_name(username)
    if user is None or user.disabled:
        return None
    return await auth.principal_for(user, "rule")


async def run_rule(
    rule: DetectionRule,
    store: EventStore,
    actions: ActionService,
    auth: AuthService,
    playbooks: PlaybookService | None = None,
) -> RuleRun:
    """Evaluate one rule as whoever armed it, with their rights now: alert on rows never seen before,
    then act on their accounts. A row whose account the service refuses as a target is alerted on,
    not acted on, and counted as skipped; a run that fails is recorded as the rule's last run, with
    its error, and the error raised again."""
    now = datetime.now(UTC)
    try:
        return await _evaluate(rule, store, actions, auth, now, playbooks)
    except Exception as exc:
        try:
            await asyncio.to_thread(_record_failure, store, rule, failure_text(exc), now)
        except Exception:  # the event store itself is failing: the log has both
            log.exception("detection rule %r: its failed run could not be recorded", rule.name)
        raise


async def _contain(
    playbooks: PlaybookService | None, name: str, rule: DetectionRule, targets: list[str], armer: Principal
) -> tuple[list[int], list[str]]:
    """Contain each person found by playbook `name`, as whoever armed the rule: (the containments
    started, why the others were not). One refused or failing person never stops the rest."""
    if playbooks is None:
        raise InvalidInput(f"rule {rule.name!r} contains with playbook {name!r}, and no playbooks are here")
    started, refused = [], []
    for target in dict.fromkeys(targets):
        try:
            run = await playbooks.run(
                name, target, f"detection rule '{rule.name}'", armer, source=ActionSource.RULE
            )
        except ClampdownError as exc:
            refused.append(f"{target}: {exc.message}")
            continue
        if run.containment_id is not None:
            started.append(run.containment_id)
    return started, refused


async def _evaluate(
    rule: DetectionRule,
    store: EventStore,
    actions: ActionService,
    auth: AuthService,
    now: datetime,
    playbooks: PlaybookService | None = None,
) -> RuleRun:
    armer = await armer_principal(auth, rule.armed_by)
    if armer is None or not armer.has(HUNTING_READ):
        raise InvalidInput(
            f"rule {rule.name!r}: {rule.armed_by!r}, who armed it, may no longer run hunting queries"
        )
    # The armer's scope limits what the rule sees, as it limits their own hunts.
    result = await asyncio.to_thread(run_query, store, rule.query, sources=armer.scope)
    hashes = [_row_hash(result.columns, row) for row in result.rows]
    fresh = await asyncio.to_thread(_new_rows, store, rule.id, hashes)
    new: list[_NewAlert] = []
    column = rule.account_column
    acts = bool(rule.action_type and column)
    index = result.columns.index(column) if column and column in result.columns else None
    for row_hash, row in zip(hashes, result.rows, strict=True):
        if row_hash in fresh:
            fresh.discard(row_hash)  # a row repeated within one run alerts once
            account = None if index is None or row[index] in (None, "") else str(row[index])
            # One planted value (a 600-character user name, a NUL) must not stop the rule acting on
            # the other rows: it is refused here, per row, by the check the service applies.
            skipped = _refusal(account) if acts else None
            new.append(_NewAlert(row_hash, dict(zip(result.columns, row, strict=True)), account, skipped))
    batch_id = None
    contained: list[int] = []
    reasons = [a.skipped for a in new if a.skipped is not None]
    if new and rule.action_type and column:
        good = [list(a.row.values()) for a in new if a.skipped is None]
        targets = account_values(result.columns, good, column) if good else []
        playbook = playbook_of(rule.action_type)
        if targets and playbook is not None:
            contained, refused = await _contain(playbooks, playbook, rule, targets, armer)
            reasons += refused
        elif targets:
            # The key is a digest of the rows, never the rows themselves: it fits its column.
            digest = hashlib.sha256("".join(a.row_hash for a in new).encode()).hexdigest()[:32]
            bulk = await actions.request_bulk(
                rule.action_type, targets, f"detection rule '{rule.name}'", armer,
                idempotency_key=f"rule-{rule.id}-{digest}", source=ActionSource.RULE,
            )  # fmt: skip
            batch_id = bulk.batch_id
    run = RuleRun(rule.name, len(result.rows), len(new), batch_id, len(reasons), _skip_note(reasons),
                  tuple(contained))  # fmt: skip
    if reasons:
        log.warning("detection rule %r: %s", rule.name, run.note)
    await asyncio.to_thread(_record, store, rule, new, run, now)
    return run


async def run_due_rules(
    store: EventStore, actions: ActionService, auth: AuthService, playbooks: PlaybookService | None = None
) -> list[RuleRun]:
    """Every enabled rule whose interval has passed. A rule that fails, for any reason, is recorded
    as failed and waits its interval; the rules after it still run."""
    runs = []
    now = datetime.now(UTC)
    for rule in await asyncio.to_thread(list_rules, store):
        if not rule.due(now):
            continue
        try:
            run = await run_rule(rule, store, actions, auth, playbooks)
        except ClampdownError as exc:
            log.warning("detection rule %r failed: %s", rule.name, exc.message)
            await _audit_scheduled(auth, rule, error=failure_text(exc))
            continue
        except Exception as exc:  # a driver's error or a bug: logged with its trace, once a run
            log.exception("detection rule %r failed", rule.name)
            await _audit_scheduled(auth, rule, error=failure_text(exc))
            continue
        runs.append(run)
        if run.new_alerts or run.batch_id or run.containment_ids:  # a quiet run is not worth an entry
            await _audit_scheduled(auth, rule, **run_details(run))
    return runs


def run_details(run: RuleRun) -> dict[str, Any]:
    """What the `rule.run` audit event says of a run that completed."""
    details: dict[str, Any] = {
        "rows": run.rows, "new_alerts": run.new_alerts, "batch_id": run.batch_id, "skipped": run.skipped,
    }  # fmt: skip
    if run.note:
        details["note"] = run.note
    if run.containment_ids:
        details["containment_ids"] = list(run.containment_ids)
    return details


async def _audit_scheduled(auth: AuthService, rule: DetectionRule, **data: Any) -> None:
    """A scheduled run that alerted, acted or failed, recorded as done by whoever armed the rule;
    an audit log that cannot be written is logged and does not stop the other rules."""
    event = rule_event(
        EventName.RULE_RUN, auth.clock.now(), rule.armed_by, rule.name,
        rule_id=rule.id, action_type=rule.action_type, armed_by=rule.armed_by, channel="schedule", **data,
    )  # fmt: skip
    try:
        await auth.record_events([event])
    except Exception:
        log.exception("detection rule %r: its run could not be audited", rule.name)
