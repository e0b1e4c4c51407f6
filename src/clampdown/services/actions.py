"""Requesting, undoing, cancelling and reading actions."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from clampdown.auth.principal import (
    PermissionDenied,
    Principal,
    require_action,
    require_permission,
    scope_words,
)
from clampdown.catalog import ActionDefinition, get_action
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.connectors.base import Connector
from clampdown.connectors.instances import instances_of, require_instance, stamped
from clampdown.errors import (
    AccountNotFound,
    Conflict,
    Forbidden,
    IdentityConflict,
    InvalidInput,
    NotFound,
    TransientError,
)
from clampdown.limits import (
    BULK_CHUNK,
    MAX_ACTION_TYPE,
    MAX_BATCH_ID,
    MAX_BULK,
    MAX_BULK_IDEMPOTENCY_KEY,
    MAX_ERROR_CODE,
    MAX_IDEMPOTENCY_KEY,
    MAX_INSTANCE,
    MAX_LOCATED_BULK,
    MAX_PROVIDER,
    MAX_REASON,
    MAX_TARGET,
    MAX_USERNAME,
    clean_incident,
    clean_text,
    clean_time,
    optional_text,
)
from clampdown.model import (
    Account,
    AccountState,
    Action,
    ActionFilter,
    ActionSource,
    ActionStatus,
    StepRole,
    restore_point,
)
from clampdown.permissions import RESPONSE_READ
from clampdown.policy import PolicyGate, ProtectedAccount, Verdict
from clampdown.sealing import SealingKey, new_sealing_key, open_sealed
from clampdown.store.actions import ActionStore, IdempotentRequest, NewAction
from clampdown.store.wakeup import doorbell_of, listen

# Records a denied attempt: (principal, what was attempted, target, what was missing).
DenialRecorder = Callable[[Principal, str, str | None, str], Awaitable[None]]


async def _ignore_denial(principal: Principal, attempted: str, target: str | None, missing: str) -> None:
    return None


@dataclass(frozen=True)
class Gated:
    """What the policy gate said of one request: why it waits for a second person (None: it does
    not) and the rules an approval of it covers."""

    reason: str | None = None
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class RefusedTarget:
    """A target of a bulk that was not queued, and why (in no directory, or in several)."""

    target: str
    reason: str


@dataclass(frozen=True)
class BulkRequest:
    """The result of a bulk request: its batch id, one action per distinct target queued, and the
    targets refused before queueing (a bulk that must find each target's directory)."""

    batch_id: str
    actions: list[Action]
    refused: list[RefusedTarget] = field(default_factory=list)


LOCATE_CONCURRENCY = 16  # lookups of such a bulk at a time


def clean_reason(definition: ActionDefinition, reason: str | None) -> str:
    """The reason as recorded; InvalidInput if it is missing where required, or malformed."""
    text = (reason or "").strip()
    if "\x00" in text:
        raise InvalidInput("reason must not contain a NUL character")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"reason is longer than {MAX_REASON} characters")
    if definition.reason_required and not text:
        raise InvalidInput(f"a reason is required for {definition.id}: say why the action is taken")
    return text


def clean_target(target: str) -> str:
    """A user reference as given, stripped; InvalidInput if empty, too long or with a NUL."""
    text = (target or "").strip()
    if not text:
        raise InvalidInput("target is empty: give a user name, UPN, email or id")
    if "\x00" in text:
        raise InvalidInput(f"target {text!r} contains a NUL character")
    if len(text) > MAX_TARGET:
        raise InvalidInput(f"target is longer than {MAX_TARGET} characters")
    return text


def check_filter(flt: ActionFilter) -> ActionFilter:
    """The filter, if every field is one the store can take: InvalidInput naming the field."""
    for name, value, limit in (
        ("type", flt.type, MAX_ACTION_TYPE),
        ("provider", flt.provider, MAX_PROVIDER),
        ("instance", flt.instance, MAX_INSTANCE),
        ("target", flt.target, MAX_TARGET),
        ("requested_by", flt.requested_by, MAX_USERNAME),
        ("batch", flt.batch_id, MAX_BATCH_ID),
        ("error_code", flt.error_code, MAX_ERROR_CODE),
    ):
        if value is not None:
            clean_text(name, value, limit)
    if flt.type is not None:
        get_action(flt.type)
    if flt.incident is not None:
        clean_incident(flt.incident)
    clean_time("since", flt.since)  # in range, so the store converts it to UTC without overflow
    clean_time("until", flt.until)
    return flt


def bulk_item_key(idempotency_key: str, target: str) -> str:
    """The stored key of one action of a keyed bulk: the bulk's key and a digest of the target,
    so it fits the column however long the target is."""
    return f"{idempotency_key}:{hashlib.sha256(target.encode()).hexdigest()[:40]}"


def targets_digest(targets: Sequence[str]) -> str:
    """One digest of a bulk's distinct targets, whatever their order: the body a bulk key covers."""
    return hashlib.sha256("\n".join(sorted(targets)).encode()).hexdigest()


def hands_secret(connector: Connector, definition: ActionDefinition) -> bool:
    """Whether the connector makes a secret for the requester when it performs `definition` (the
    AD connector's random password, when configured to hand it over)."""
    check = getattr(connector, "hands_secret", None)
    return bool(check(definition.method)) if callable(check) else False


def undo_refusal(original: Action) -> str | None:
    """Why `original` cannot be undone, or None: the one rule for the API, CLI and console."""
    definition = get_action(original.type)
    if definition.inverse is None:
        return f"{definition.id} cannot be undone ({definition.title} has no inverse)"
    if original.status is not ActionStatus.COMPLETED:
        return f"action {original.id} is {original.status.value}; only a completed action can be undone"
    if original.changed is False:
        return f"nothing to undo: action {original.id} changed nothing, the account was already in that state"
    return None


def _waiting_timer(action: Action) -> bool:
    """A timed release that has not started: an undo asked for now replaces it."""
    return action.containment_role == StepRole.TIMER and action.status is ActionStatus.QUEUED


def shown_to(principal: Principal, action: Action) -> Action:
    """The action as a scoped user may see it: how its account was linked to the person when it
    was requested can name directories outside their access, so that is left out for them."""
    account = action.account
    if principal.scope is None or account is None or account.linked_by is None:
        return action
    return replace(action, account=replace(account, linked_by=None))


class ActionService:
    """Validates requests and writes them to the store; workers do the rest."""

    def __init__(
        self,
        store: ActionStore,
        connectors: dict[str, Connector],
        clock: Clock = SYSTEM_CLOCK,
        record_denial: DenialRecorder = _ignore_denial,
        guardrails: PolicyGate | None = None,
        bulk_chunk: int = BULK_CHUNK,
    ) -> None:
        self.store = store
        self.bulk_chunk = bulk_chunk  # actions of a bulk written per transaction
        self.connectors = connectors
        self.clock = clock
        self._record_denial = record_denial
        self.guardrails = guardrails

    async def record_denial(
        self, principal: Principal, attempted: str, target: str | None, missing: str
    ) -> None:
        """Keep a denied attempt (who, where from, what, what was missing)."""
        await self._record_denial(principal, attempted, target, missing)

    async def authorize(self, principal: Principal, definition: ActionDefinition, target: str | None) -> None:
        """PermissionDenied (and a recorded denial) unless the principal may run the action."""
        try:
            require_action(principal, definition)
        except PermissionDenied as exc:
            await self._record_denial(principal, definition.id, target, exc.missing)
            raise

    async def authorize_read(self, principal: Principal) -> None:
        """PermissionDenied (and a recorded denial) unless the principal may see the action center."""
        try:
            require_permission(principal, RESPONSE_READ, "see the action center")
        except PermissionDenied as exc:
            await self._record_denial(principal, "actions.read", None, exc.missing)
            raise

    def connector_for(self, definition: ActionDefinition, instance: str | None = None) -> Connector:
        """The connector of directory `instance` (of the action's kind), or of the only one."""
        name = require_instance(self.connectors, definition.provider, instance, definition.id)
        return self.connectors[name]

    def directories(self, principal: Principal | None = None) -> dict[str, Connector]:
        """The configured directories the principal may see and act in (all without a principal).
        What a scoped user is told (errors, lists) names only these: the others do not exist for them."""
        if principal is None or principal.scope is None:
            return self.connectors
        return {name: c for name, c in self.connectors.items() if principal.sees(name)}

    async def directory_to_act_in(
        self, principal: Principal, definition: ActionDefinition, instance: str | None, target: str | None
    ) -> tuple[dict[str, Connector], str | None]:
        """The directories the principal may act in, and the one they named (checked: a name they
        may not see is as unknown as one not configured), or None. PermissionDenied, recorded, when
        the action's kind is configured but none of its directories is in their scope."""
        kind = definition.provider
        seen = self.directories(principal)
        if (
            principal.scope is not None
            and instances_of(self.connectors, kind)
            and not instances_of(seen, kind)
        ):
            missing = f"access to a {kind} directory"
            await self._record_denial(principal, definition.id, target, missing)
            raise PermissionDenied(
                f"{principal.username} may not run {definition.id}: their access is limited to "
                f"{scope_words(principal.scope)}, none of them a {kind} directory",
                missing,
            )
        if instance is None:
            return seen, None
        names = instances_of(seen, kind)
        if instance not in names:  # exactly a configured one: a typo never falls back to another
            raise InvalidInput(
                f"'{instance}' is not a configured {kind} directory; configured: {', '.join(names) or 'none'}"
            )
        return seen, instance

    async def locate(
        self,
        definition: ActionDefinition,
        instance: str | None,
        target: str,
        principal: Principal | None = None,
    ) -> tuple[str, Account | None]:
        """The directory to act in and the account, resolved while the requester waits, so a typo
        is an error, not a failed action. If the directory is unreachable the action is queued
        anyway and resolved by the worker. With several directories of the kind and none named,
        the one that knows `target`; IdentityConflict, naming what each found, if several do.
        Only the directories the principal may see are asked."""
        kind = definition.provider
        connectors = self.directories(principal)
        names = [instance] if instance else instances_of(connectors, kind)
        if len(names) <= 1:
            name = require_instance(connectors, kind, instance, definition.id)
            try:
                return name, stamped(await connectors[name].resolve_user(target), name)
            except AccountNotFound as exc:
                raise NotFound(f"no such user in {name}: {exc.message}") from None
            except TransientError:
                return name, None
        results = await asyncio.gather(
            *(connectors[n].resolve_user(target) for n in names), return_exceptions=True
        )
        found = {n: stamped(r, n) for n, r in zip(names, results, strict=True) if isinstance(r, Account)}
        shown = "; ".join(f"{n}: {a.name} ({a.id})" for n, a in found.items())
        if len(found) > 1:
            raise IdentityConflict(
                f"'{target}' names accounts in {len(found)} {kind} directories: {shown}. Nothing was "
                f"done; name the directory to act in (instance), or run a playbook on the person"
            )
        failed = [
            (n, r) for n, r in zip(names, results, strict=True)
            if not isinstance(r, Account | AccountNotFound)
        ]  # fmt: skip
        if failed:  # one that did not answer may hold another account of that name: never a guess
            why = "; ".join(f"{n} could not be asked ({r})" for n, r in failed)
            raise InvalidInput(
                f"cannot tell which {kind} directory holds '{target}': {why}; found in "
                f"{shown or 'none of the others'}. Name the directory to act in (instance)"
            )
        if found:
            [(name, account)] = found.items()
            return name, account
        raise NotFound(f"no such user in {', '.join(names)}: '{target}'")

    async def request(
        self,
        type_id: str,
        target: str,
        reason: str | None,
        principal: Principal,
        *,
        idempotency_key: str | None = None,
        request_approval: bool = False,
        until: datetime | None = None,
        instance: str | None = None,
        source: ActionSource = ActionSource.MANUAL,
        incident: str | None = None,
    ) -> Action:
        """Queue one action. The same idempotency key returns the first action, never a second.
        A protected account is refused unless `request_approval`; `until` schedules the undo.
        `instance`: the directory to act in, where several of the action's kind are configured.
        `source`: the face that asked (recorded); `incident`: the ticket id it is part of."""
        definition = get_action(type_id)
        await self.authorize(principal, definition, target)
        text = clean_reason(definition, reason)
        ref = clean_target(target)
        idempotency_key = optional_text("idempotency_key", idempotency_key, MAX_IDEMPOTENCY_KEY)
        until = clean_time("until", until)
        instance = optional_text("instance", instance, MAX_INSTANCE)
        incident = clean_incident(incident)
        _, instance = await self.directory_to_act_in(principal, definition, instance, ref)
        # A key is the requester's own: the same key and body return the first action; the same
        # key with another body is a Conflict naming what differs, never a silently dropped request.
        keyed = IdempotentRequest(
            type=definition.id, target=ref, reason=text,
            until=until.isoformat() if until else None, request_approval=request_approval,
        ) if idempotency_key else None  # fmt: skip
        if idempotency_key and keyed:
            found = await self.store.find_idempotent(principal.username, idempotency_key, keyed)
            if found is not None:
                return found
        inverse = self.timed_inverse(definition, until)
        # A secret the action makes is sealed to a key only this answer carries (clampdown.sealing).
        where, account = await self.locate(definition, instance, ref, principal)
        connector = self.connectors[where]
        sealing: SealingKey | None = new_sealing_key() if hands_secret(connector, definition) else None
        also = self.judge(inverse, account, None, ref) if inverse is not None else None
        gated = await self.gate(
            principal, definition, connector, ref, account, request_approval=request_approval, also=also
        )
        item = NewAction(
            type=definition.id,
            provider=definition.provider,
            target=ref,
            requested_by=principal.username,
            reason=text,
            account=account,
            idempotency_key=idempotency_key,
            idempotent_request=keyed,
            approval_reason=gated.reason,
            approval_rules=gated.rules,
            seal_key=sealing.public if sealing else None,
            instance=where,
            source=ActionSource(source),
            incident=incident,
        )
        items = [item]
        if inverse is not None and until is not None:
            items.append(self.timed_undo(inverse, item, 0, until))
        queued = (await self.store.enqueue(items, self.clock.now(), self.approval_deadline()))[0]
        if sealing is not None and queued.seal_key == sealing.public:  # new, not a repeated key
            return replace(queued, secret_key=sealing.private)
        return queued

    async def open_secret(self, action_id: int, secret_key: str, principal: Principal) -> str:
        """The secret action `action_id` made for its requester (a new random password), opened
        with the key the request's answer carried; once: it is removed from the store after."""
        action = await self._visible(action_id, principal)
        if action.requested_by != principal.username:
            await self._record_denial(principal, "actions.open_secret", action.target, "being the requester")
            raise Forbidden(
                f"only {action.requested_by}, who requested action {action_id}, may open its secret"
            )
        sealed = action.sealed_secret
        if sealed is None:
            if action.status.is_final:
                raise Conflict(f"action {action_id} has no secret to hand over (none, or opened already)")
            raise Conflict(f"action {action_id} is {action.status.value}: no secret before it completes")
        secret = open_sealed(secret_key, sealed, f"action:{action_id}")
        if not await self.store.hand_over_sealed(action_id, sealed):
            raise Conflict(f"action {action_id}: its secret was opened already")
        return secret

    def approval_deadline(self) -> datetime | None:
        return self.clock.now() + self.guardrails.approval_lifetime if self.guardrails else None

    def timed_inverse(self, definition: ActionDefinition, until: datetime | None) -> ActionDefinition | None:
        """The inverse to schedule for `until` (None without `until`, or for an action that has
        none: the caller says so), checked before anything is written."""
        until = clean_time("until", until)
        if until is None:
            return None
        if until <= self.clock.now():
            raise InvalidInput(f"until: {until.isoformat()} is not in the future")
        if definition.inverse is None:
            return None
        inverse = get_action(definition.inverse)
        if not instances_of(self.connectors, inverse.provider):
            self.connector_for(inverse)  # says it is not configured
        return inverse

    @staticmethod
    def timed_undo(inverse: ActionDefinition, item: NewAction, index: int, until: datetime) -> NewAction:
        """The inverse of item `index`, run at `until` once that item completed, restoring its state."""
        return NewAction(
            type=inverse.id,
            provider=inverse.provider,
            target=item.target,
            requested_by=item.requested_by,
            reason=f"timed release at {until.isoformat()}: {item.reason}",
            account=item.account,
            instance=item.instance,
            batch_id=item.batch_id,
            playbook=item.playbook,
            after_index=index,
            undoes_index=index,
            not_before=until,
            containment_role=StepRole.TIMER,
            source=ActionSource.TIMED_RELEASE,
            incident=item.incident,
        )

    def judge(
        self,
        definition: ActionDefinition,
        account: Account | None,
        state: AccountState | None,
        target: str | None,
        playbook: str | None = None,
    ) -> Verdict | None:
        """What the policy gate says of `definition` on this account now (None: no gate)."""
        if self.guardrails is None:
            return None
        return self.guardrails.judge(definition.id, account, state, target, playbook)

    async def gate(
        self,
        principal: Principal,
        definition: ActionDefinition,
        connector: Connector,
        target: str,
        account: Account | None,
        *,
        request_approval: bool,
        playbook: str | None = None,
        state: AccountState | None = None,
        also: Verdict | None = None,
    ) -> Gated:
        """Ask the policy gate about one request. A protected account is refused (and the refusal
        recorded) unless the requester asked for approval; `also` adds what the gate said of
        something approved together with it (a timed release, inherited by its step)."""
        if self.guardrails is None:
            return Gated(f"approval requested by {principal.username}") if request_approval else Gated()
        if account is not None and state is None:
            try:
                state = await connector.read_state(account)
            except TransientError:
                state = None  # the worker checks again on the state it reads before acting
        verdict = self.guardrails.judge(definition.id, account, state, target, playbook)
        protection = verdict.protection or (also.protection if also else None)
        rules = tuple(dict.fromkeys((*verdict.rules, *(also.rules if also else ()))))
        if protection is not None and not request_approval:
            await self._record_denial(principal, definition.id, target, f"approval (protected: {protection})")
            raise ProtectedAccount(account.name if account else target, protection)
        if not rules:
            return Gated(f"approval requested by {principal.username}") if request_approval else Gated()
        return Gated("; ".join(rules), rules)

    async def request_bulk(
        self,
        type_id: str,
        targets: Sequence[str],
        reason: str | None,
        principal: Principal,
        *,
        idempotency_key: str | None = None,
        instance: str | None = None,
        source: ActionSource = ActionSource.MANUAL,
        incident: str | None = None,
    ) -> BulkRequest:
        """Queue one action per distinct target under a new batch id; accounts are resolved by
        the workers, so a bulk of thousands is accepted at once. Written in chunks of
        `bulk_chunk`, each committed (and visible to the workers) before the next."""
        definition = get_action(type_id)
        await self.authorize(principal, definition, f"{len(targets)} targets")
        text = clean_reason(definition, reason)
        idempotency_key = optional_text("idempotency_key", idempotency_key, MAX_BULK_IDEMPOTENCY_KEY)
        instance = optional_text("instance", instance, MAX_INSTANCE)
        incident = clean_incident(incident)
        seen, instance = await self.directory_to_act_in(principal, definition, instance, None)
        cleaned = list(dict.fromkeys(clean_target(t) for t in targets))
        if not cleaned:
            raise InvalidInput("targets is empty: give at least one user")
        if len(cleaned) > MAX_BULK:
            raise InvalidInput(f"too many targets: {len(cleaned)} (at most {MAX_BULK} per bulk)")
        # One directory (named, or the only one of the kind the requester sees): the workers
        # resolve the accounts. Several: each target's directory is found now, as for one request.
        several = instance is None and len(instances_of(seen, definition.provider)) > 1
        if several:
            located, refused = await self._locate_many(definition, cleaned, principal)
        else:
            where = require_instance(seen, definition.provider, instance, definition.id)
            located, refused = {t: (where, None) for t in cleaned}, []
        if not located:
            shown = "; ".join(f"{r.target}: {r.reason}" for r in refused[:10])
            raise InvalidInput(f"none of the {len(cleaned)} targets can be acted on: {shown}")
        # The key is the requester's: two people's equal keys are two batches.
        batch_id = (
            str(uuid.uuid5(uuid.NAMESPACE_URL, f"{principal.username}\n{idempotency_key}"))
            if idempotency_key
            else str(uuid.uuid4())
        )
        keyed = IdempotentRequest(
            type=definition.id, reason=text, targets=targets_digest(cleaned), target_count=len(cleaned)
        ) if idempotency_key else None  # fmt: skip
        items = []
        for t, (where, account) in located.items():
            # Accounts are resolved by the workers, which ask the gate again on what they find:
            # a protected account is refused there, a rule that matches the account waits there.
            verdict = self.judge(definition, account, None, t)
            rules = verdict.approvals if verdict else ()
            items.append(
                NewAction(
                    type=definition.id,
                    provider=definition.provider,
                    target=t,
                    requested_by=principal.username,
                    reason=text,
                    account=account,
                    batch_id=batch_id,
                    instance=where,
                    idempotency_key=bulk_item_key(idempotency_key, t) if idempotency_key else None,
                    idempotent_request=keyed,
                    approval_reason="; ".join(rules) or None,
                    approval_rules=rules,
                    source=ActionSource(source),
                    incident=incident,
                )
            )
        if idempotency_key and keyed:  # the same key with other targets is refused before any chunk
            await self.store.check_bulk_key(principal.username, batch_id, keyed)
        # In chunks, each its own transaction: a bulk of 100,000 never holds the database (the one
        # SQLite connection) or the audit chain for the whole insert, and the workers start on the
        # first chunk while the others are written. With a key, a retry after a failure part way
        # finds the chunks already written by their keys and writes the rest, once.
        now, deadline = self.clock.now(), self.approval_deadline()
        queued: list[Action] = []
        for start in range(0, len(items), self.bulk_chunk):
            queued += await self.store.enqueue(items[start : start + self.bulk_chunk], now, deadline)
        # A repeated key returns the first request's actions, and so its batch.
        return BulkRequest(queued[0].batch_id or batch_id, queued, refused)

    async def _locate_many(
        self, definition: ActionDefinition, targets: list[str], principal: Principal
    ) -> tuple[dict[str, tuple[str, Account | None]], list[RefusedTarget]]:
        """Each target's directory, found as a single request finds it (several lookups at a
        time); a target in no directory, in several, or where one does not answer, is refused."""
        if len(targets) > MAX_LOCATED_BULK:
            names = ", ".join(instances_of(self.directories(principal), definition.provider))
            raise InvalidInput(
                f"{len(targets)} targets in {definition.provider} directories {names}: name the directory "
                f"(instance) for a bulk of more than {MAX_LOCATED_BULK}, or split it by directory"
            )
        slots = asyncio.Semaphore(LOCATE_CONCURRENCY)

        async def one(target: str) -> tuple[str, Account | None] | RefusedTarget:
            async with slots:
                try:
                    return await self.locate(definition, None, target, principal)
                except (NotFound, IdentityConflict, InvalidInput) as exc:
                    return RefusedTarget(target, exc.message)

        found = await asyncio.gather(*(one(t) for t in targets))
        located = {t: f for t, f in zip(targets, found, strict=True) if not isinstance(f, RefusedTarget)}
        return located, [f for f in found if isinstance(f, RefusedTarget)]

    async def undo(
        self,
        action_id: int,
        principal: Principal,
        reason: str | None = None,
        *,
        request_approval: bool = False,
        source: ActionSource = ActionSource.MANUAL,
        incident: str | None = None,
    ) -> Action:
        """Queue the inverse of a completed action now, restoring the state read before it ran; a
        timed release still waiting for its time is cancelled in its favour. An inverse needs what
        its action needs, and the policy gate is asked about it like any other request."""
        original = await self._visible(action_id, principal)
        definition = get_action(original.type)
        await self.authorize(principal, definition, original.target)
        refusal = undo_refusal(original)
        if refusal is not None or definition.inverse is None:
            raise Conflict(refusal or f"{definition.id} has no inverse")
        text = clean_text("reason", reason, MAX_REASON)
        incident = clean_incident(incident) or original.incident  # the undone action's, unless given
        existing = await self.store.find_undo(action_id)
        timer = existing if existing is not None and _waiting_timer(existing) else None
        if existing is not None and timer is None:
            return existing
        inverse = get_action(definition.inverse)
        await self.authorize(principal, inverse, original.target)
        connector = self.connector_for(inverse, original.instance)
        gated = await self.gate(
            principal, inverse, connector, original.target, original.account,
            request_approval=request_approval,
        )  # fmt: skip
        item = NewAction(
            type=inverse.id,
            provider=inverse.provider,
            target=original.target,
            requested_by=principal.username,
            reason=text or f"undo of action {action_id}: {original.reason}",
            account=original.account,
            undoes_action_id=original.id,
            restore_state=restore_point(original),
            approval_reason=gated.reason,
            approval_rules=gated.rules,
            containment_id=original.containment_id,
            containment_role=StepRole.UNDO if original.containment_id else None,
            instance=original.instance,
            source=ActionSource(source),
            incident=incident,
        )
        now = self.clock.now()
        # An undo that runs now replaces the waiting timer; one that must wait for a second person
        # leaves it in place, so the release still happens at `until` if no one approves.
        if timer is not None and gated.reason is None:
            deadline = self.approval_deadline()
            replaced = await self.store.enqueue_replacing(timer.id, item, now, deadline, principal.username)
            if replaced is not None:
                return replaced
            return await self.store.find_undo(action_id) or timer  # the timer started meanwhile
        return (await self.store.enqueue([item], now, self.approval_deadline()))[0]

    async def cancel(self, action_id: int, principal: Principal) -> Action:
        """Cancel a queued action; needs the right to run that action."""
        action = await self._visible(action_id, principal)
        await self.authorize(principal, get_action(action.type), action.target)
        return await self.store.cancel(action_id, self.clock.now(), principal.username)

    async def get_many(self, action_ids: Sequence[int], principal: Principal) -> dict[int, Action]:
        """Actions by id (those that exist), for a caller who may see the action center."""
        await self.authorize_read(principal)
        found = await self.store.get_many(action_ids)
        return {i: shown_to(principal, a) for i, a in found.items() if principal.sees(a.instance)}

    async def find_undo(self, action_id: int, principal: Principal) -> Action | None:
        """The live or completed undo of an action, if one was requested."""
        await self._visible(action_id, principal)
        found = await self.store.find_undo(action_id)
        return shown_to(principal, found) if found is not None else None

    async def count_by_status(self, flt: ActionFilter, principal: Principal) -> dict[ActionStatus, int]:
        """How many actions match, per status (batch progress, the Pending count)."""
        await self.authorize_read(principal)
        return await self.store.count_by_status(self.scoped_filter(flt, principal))

    async def wait(self, action_ids: Sequence[int], timeout: float, poll: float = 0.1) -> list[Action]:
        """Until every action is final or `timeout` seconds pass; the actions as last read. Read
        again at each of the queue's wake-ups (store.wakeup: an action of this process, or any on
        PostgreSQL, ended) and at least every `poll` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        changed, stop = asyncio.Event(), asyncio.Event()
        bell = doorbell_of(self.store.engine)
        bell.subscribe(changed)
        notices = asyncio.create_task(listen(self.store.engine, changed.set, stop))
        try:
            while True:
                changed.clear()
                found = await self.store.get_many(action_ids)
                current = [found.get(i) or await self.store.get(i) for i in action_ids]  # get: NotFound
                left = deadline - loop.time()
                if all(a.status.is_final for a in current) or left <= 0:
                    return current
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(poll, left))
        finally:
            stop.set()
            bell.unsubscribe(changed)
            notices.cancel()
            await asyncio.gather(notices, return_exceptions=True)

    async def get(self, action_id: int, principal: Principal) -> Action:
        """One action, for a caller who may see the action center."""
        return shown_to(principal, await self._visible(action_id, principal))

    async def _visible(self, action_id: int, principal: Principal) -> Action:
        """The action as stored, for a caller who may see the action center and its directory."""
        await self.authorize_read(principal)
        action = await self.store.get(action_id)
        if not principal.sees(action.instance):  # as if it did not exist
            raise NotFound(f"no action with id {action_id}")
        return action

    @staticmethod
    def scoped_filter(flt: ActionFilter, principal: Principal) -> ActionFilter:
        """The filter, checked, limited to the directories the principal may see."""
        return replace(check_filter(flt), instances=principal.scope)

    async def list_actions(
        self, flt: ActionFilter, principal: Principal, *, limit: int = 100, before_id: int | None = None
    ) -> list[Action]:
        """Newest first, for a caller who may see the action center."""
        await self.authorize_read(principal)
        found = await self.store.list_actions(
            self.scoped_filter(flt, principal), limit=limit, before_id=before_id
        )
        return [shown_to(principal, a) for a in found]
