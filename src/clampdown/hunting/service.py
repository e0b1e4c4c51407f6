"""What the API and CLI call for hunting: queries, saved queries and acting on results, under RBAC.

A user whose access is limited to some directories hunts in their events only; detection rules
and alerts span every directory, so they are for unscoped users alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from clampdown.audit.events import EventName, rule_event, saved_query_event
from clampdown.auth.principal import PermissionDenied, Principal, require_permission, require_unscoped
from clampdown.auth.service import AuthService
from clampdown.catalog import get_action
from clampdown.errors import InvalidInput
from clampdown.hunting.query import (
    Language,
    QueryCheck,
    QueryError,
    QueryResult,
    account_values,
    check_query,
    detect_language,
    run_query,
)
from clampdown.hunting.rules import (
    Alert,
    DetectionRule,
    RuleRun,
    create_rule,
    failure_text,
    get_rule,
    list_alerts,
    list_rules,
    playbook_of,
    run_details,
    run_rule,
    set_rule_enabled,
)
from clampdown.hunting.saved import (
    SavedQuery,
    delete_saved_query,
    get_saved_query,
    list_saved_queries,
    save_query,
)
from clampdown.hunting.schema import EVENT_TABLES, EventTable
from clampdown.hunting.settings import events_path, hunting_settings
from clampdown.hunting.store import EventStore
from clampdown.model import ActionSource
from clampdown.permissions import HUNTING_MANAGE, HUNTING_READ
from clampdown.services.actions import ActionService, BulkRequest, DenialRecorder
from clampdown.services.playbooks import PlaybookService
from clampdown.services.runtime import Runtime

# Two cores are shared by everything: more queries at once would only queue inside DuckDB.
MAX_CONCURRENT_QUERIES = 2


@dataclass(frozen=True)
class ActOnResults:
    """A bulk action requested from a hunt: the batch, and the distinct accounts it targets."""

    bulk: BulkRequest
    targets: list[str]


class HuntingService:
    """Queries the event store for callers with hunting:read; saving needs hunting:manage."""

    def __init__(
        self,
        store: EventStore,
        actions: ActionService,
        auth: AuthService,
        record_denial: DenialRecorder,
        playbooks: PlaybookService | None = None,
    ) -> None:
        self.store = store
        self.actions = actions
        self.auth = auth
        self.playbooks = playbooks  # a rule whose action is playbook:NAME contains through them
        self._record_denial = record_denial
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)

    @classmethod
    def from_runtime(cls, rt: Runtime, *, open_now: bool = True) -> HuntingService:
        """The service over the configured event store, created if missing (or, without
        `open_now`, on first use: a busy or broken event file must not stop a server starting)."""
        store = EventStore(events_path(rt.settings), hunting_settings(rt.settings))
        if open_now:
            store.initialize()
        return cls(store, rt.actions, rt.auth, rt.auth.record_denial, rt.playbooks)

    async def _allow(self, principal: Principal, permission: str, what: str) -> None:
        try:
            require_permission(principal, permission, what)
        except PermissionDenied as exc:
            await self._record_denial(principal, f"hunting.{what}", None, exc.missing)
            raise

    async def _allow_every_directory(self, principal: Principal, what: str) -> None:
        """PermissionDenied (and a recorded denial) when the principal's access is limited to some
        directories: rules and alerts span them all."""
        try:
            require_unscoped(principal, what)
        except PermissionDenied as exc:
            await self._record_denial(principal, f"hunting.{what}", None, exc.missing)
            raise

    async def require_read(self, principal: Principal, what: str) -> None:
        """PermissionDenied (and a recorded denial) unless the principal holds hunting:read."""
        await self._allow(principal, HUNTING_READ, what)

    async def schema(self, principal: Principal) -> tuple[EventTable, ...]:
        """The event tables and their columns, for the editor's completion and the schema list."""
        await self._allow(principal, HUNTING_READ, "read the hunting schema")
        return EVENT_TABLES

    async def check(self, principal: Principal, text: str, language: Language | None = None) -> QueryCheck:
        """Whether the query can run as written (its syntax, a KQL translation), for the editor to
        underline a mistake as it is typed; runs nothing."""
        await self._allow(principal, HUNTING_READ, "check hunting queries")
        try:
            found = await asyncio.to_thread(check_query, text, language)
        except QueryError as exc:
            lang = language or (detect_language(text.strip()) if text.strip() else None)
            return QueryCheck(lang, False, exc.message, exc.line, exc.column)
        return QueryCheck(found, True)

    async def query(
        self,
        principal: Principal,
        text: str,
        language: Language | None = None,
        max_rows: int | None = None,
    ) -> QueryResult:
        """Run a read-only hunting query as the principal, over the events of their directories."""
        await self._allow(principal, HUNTING_READ, "run hunting queries")
        async with self._slots:
            return await asyncio.to_thread(
                run_query, self.store, text, language, max_rows=max_rows, sources=principal.scope
            )

    async def act_on_results(
        self,
        principal: Principal,
        text: str,
        column: str,
        action_type: str,
        reason: str | None,
        *,
        language: Language | None = None,
        idempotency_key: str | None = None,
    ) -> ActOnResults:
        """Run the query and request `action_type` on every account in `column`, as one bulk batch
        through the normal action path (RBAC, action center); a scoped principal's query reads
        their directories' events only, so only accounts found there are targets."""
        result = await self.query(principal, text, language)
        if result.truncated:
            raise InvalidInput(
                f"the query returns more than {len(result.rows)} rows; narrow it before acting on it"
            )
        targets = account_values(result.columns, result.rows, column)
        if not targets:
            raise InvalidInput(f"no accounts in column {column!r}: the query returned no values there")
        bulk = await self.actions.request_bulk(
            action_type, targets, reason, principal, idempotency_key=idempotency_key,
            source=ActionSource.HUNTING,
        )  # fmt: skip
        return ActOnResults(bulk, targets)

    async def save(
        self, principal: Principal, name: str, text: str, description: str = "", *, source: str | None = None
    ) -> SavedQuery:
        """Save a query under a unique name; it is checked by translating it first. Audited, with
        the caller's `source` address when there is one."""
        await self._allow(principal, HUNTING_MANAGE, "save hunting queries")
        await self.query(principal, text, max_rows=1)
        saved = await asyncio.to_thread(save_query, self.store, name, text, principal.username, description)
        await self._audit_saved(
            EventName.SAVED_QUERY_CREATED,
            principal,
            saved,
            source,
            query=saved.query,
            description=description,
        )
        return saved

    async def saved(self, principal: Principal) -> list[SavedQuery]:
        await self._allow(principal, HUNTING_READ, "read saved queries")
        return await asyncio.to_thread(list_saved_queries, self.store)

    async def get_saved(self, principal: Principal, ref: str | int) -> SavedQuery:
        await self._allow(principal, HUNTING_READ, "read saved queries")
        return await asyncio.to_thread(get_saved_query, self.store, ref)

    async def delete_saved(self, principal: Principal, ref: str | int, *, source: str | None = None) -> None:
        """Delete a saved query; audited with what it held."""
        await self._allow(principal, HUNTING_MANAGE, "delete saved queries")
        found = await asyncio.to_thread(get_saved_query, self.store, ref)
        await asyncio.to_thread(delete_saved_query, self.store, found.id)
        await self._audit_saved(EventName.SAVED_QUERY_DELETED, principal, found, source, query=found.query)

    async def _audit_saved(
        self, name: EventName, actor: Principal, saved: SavedQuery, source: str | None, **data: Any
    ) -> None:
        where = {"source": source} if source else {}
        event = saved_query_event(
            name, self.auth.clock.now(), actor.username, saved.name,
            saved_query_id=saved.id, owner=saved.owner, channel=actor.channel, **where, **data,
        )  # fmt: skip
        await self.auth.record_events([event])

    async def _allow_rule_action(self, principal: Principal, action_type: str | None) -> None:
        """Arming or running a rule that acts needs the right to run its action, or every step of its
        playbook (a denial is recorded)."""
        playbook = playbook_of(action_type)
        if playbook is not None:
            if self.playbooks is None:
                raise InvalidInput(f"action {action_type!r}: no playbooks are configured here")
            for step in self.playbooks.playbook(playbook).steps:
                await self.actions.authorize(principal, get_action(step.action), None)
        elif action_type is not None:
            await self.actions.authorize(principal, get_action(action_type), None)

    async def _audit_rule(
        self, name: EventName, actor: Principal, rule: DetectionRule, source: str | None = None, **data: Any
    ) -> None:
        if source:
            data["source"] = source
        event = rule_event(
            name,
            self.auth.clock.now(),
            actor.username,
            rule.name,
            rule_id=rule.id,
            action_type=rule.action_type,
            armed_by=rule.armed_by,
            channel=actor.channel,
            **data,
        )
        await self.auth.record_events([event])

    async def create_rule(
        self,
        principal: Principal,
        name: str,
        text: str,
        interval_seconds: float,
        action_type: str | None = None,
        account_column: str | None = None,
        *,
        source: str | None = None,
    ) -> DetectionRule:
        """A new rule owned and armed by the principal; one that acts needs the principal to be allowed
        the action now (and it is checked again at every run, with the armer's rights then)."""
        await self._allow(principal, HUNTING_MANAGE, "create detection rules")
        await self._allow_every_directory(principal, "create detection rules")
        await self._allow_rule_action(principal, action_type)
        result = await self.query(principal, text, max_rows=1)
        if account_column and account_column not in result.columns:
            columns = ", ".join(result.columns)
            raise InvalidInput(
                f"account_column: the query has no column {account_column!r}; columns: {columns}"
            )
        rule = await asyncio.to_thread(
            create_rule,
            self.store,
            name,
            text,
            principal.username,
            interval_seconds,
            action_type,
            account_column,
        )
        await self._audit_rule(
            EventName.RULE_CREATED,
            principal,
            rule,
            source,
            query=rule.query,
            interval_seconds=rule.interval_seconds,
            account_column=rule.account_column,
        )
        return rule

    async def rules(self, principal: Principal) -> list[DetectionRule]:
        await self._allow(principal, HUNTING_READ, "read detection rules")
        await self._allow_every_directory(principal, "read detection rules")
        return await asyncio.to_thread(list_rules, self.store)

    async def set_rule_enabled(
        self, principal: Principal, ref: str | int, enabled: bool, *, source: str | None = None
    ) -> DetectionRule:
        """Enabling arms the rule as the principal, so it needs the rule's action rights; disabling
        needs hunting:manage only, so anyone who manages rules can always stop one."""
        await self._allow(principal, HUNTING_MANAGE, "change detection rules")
        await self._allow_every_directory(principal, "change detection rules")
        before = await asyncio.to_thread(get_rule, self.store, ref)
        if enabled:
            await self._allow_rule_action(principal, before.action_type)
        rule = await asyncio.to_thread(set_rule_enabled, self.store, before.id, enabled, principal.username)
        name = EventName.RULE_ENABLED if enabled else EventName.RULE_DISABLED
        await self._audit_rule(name, principal, rule, source, previously_armed_by=before.armed_by)
        return rule

    async def run_rule_now(
        self, principal: Principal, ref: str | int, *, source: str | None = None
    ) -> RuleRun:
        """Evaluate a rule at once: the caller needs its action rights, and it acts as whoever armed it
        (the caller is recorded as the one who ran it)."""
        await self._allow(principal, HUNTING_MANAGE, "run detection rules")
        await self._allow_every_directory(principal, "run detection rules")
        rule = await asyncio.to_thread(get_rule, self.store, ref)
        await self._allow_rule_action(principal, rule.action_type)
        try:
            run = await run_rule(rule, self.store, self.actions, self.auth, self.playbooks)
        except Exception as exc:  # recorded as the rule's last run by run_rule, audited here
            await self._audit_rule(EventName.RULE_RUN, principal, rule, source, error=failure_text(exc))
            raise
        await self._audit_rule(EventName.RULE_RUN, principal, rule, source, **run_details(run))
        return run

    async def alerts(self, principal: Principal, rule: str | int | None = None) -> list[Alert]:
        await self._allow(principal, HUNTING_READ, "read alerts")
        await self._allow_every_directory(principal, "read alerts")
        rule_id = (await asyncio.to_thread(get_rule, self.store, rule)).id if rule is not None else None
        return await asyncio.to_thread(list_alerts, self.store, rule_id)
