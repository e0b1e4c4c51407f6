"""The worker loop: claim due actions, run them on connectors, record outcomes, keep leases alive.

Any number of workers may share one PostgreSQL database (claims use FOR UPDATE SKIP LOCKED); on
SQLite one worker runs embedded in `clampdown serve`. A worker that dies leaves its actions
`running` until their lease expires; then another worker claims them again, and because each
connector method is idempotent the retry changes nothing that was already changed.

Each worker registers in the workers table when it starts, heartbeats there with its lease renewal
and deregisters when it stops cleanly, so `clampdown workers`, `act --wait` and the console can tell
whether anything is working the queue. Leases run on the database's clock (see store.queue). No
database error ends `run()`: each one is logged and the loop carries on; the supervisor
(engine.supervisor) restarts a worker that still fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import outcome_event, requested_event
from clampdown.catalog import ActionDefinition, get_action
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import EngineSettings
from clampdown.connectors.base import BatchingConnector, Connector
from clampdown.connectors.instances import find_instance
from clampdown.db.database import is_data_error
from clampdown.engine.execution import AwaitApproval, Claimed, ItemOutcome, Lane, execute_group
from clampdown.engine.metrics import OUTCOMES, THROTTLED, is_throttling
from clampdown.engine.writer import GroupWriter
from clampdown.errors import ClampdownError, InvalidInput, TransientError
from clampdown.model import (
    Action,
    ActionFilter,
    ActionOutcome,
    ActionStatus,
    AttemptRecord,
    StepRole,
    restore_point,
)
from clampdown.policy import PolicyGate
from clampdown.retry import RetryPolicy
from clampdown.store.actions import ActionStore
from clampdown.store.approvals import ApprovalStore
from clampdown.store.containments import ContainmentStore
from clampdown.store.queue import ActionQueue, Completion, Held, Retry
from clampdown.store.wakeup import doorbell_of, listen
from clampdown.store.workers import WorkerRegistry

log = logging.getLogger(__name__)


EMBEDDED = "embedded"  # inside `clampdown serve`
STANDALONE = "standalone"  # a `clampdown worker` process


def new_worker_id() -> str:
    """host:pid:random, so a log line or an action's lease names the process that held it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _holds_the_person(action: Action) -> bool:
    """A step or timed release of a containment, claimed for the first time: it may start only
    while that containment is open. One tried before may already have changed the account, so it
    finishes (a release undoes it after it)."""
    return (
        action.containment_id is not None
        and action.containment_role in (StepRole.STEP, StepRole.TIMER)
        and action.attempts <= 1
    )


def _hands_back(action: Action) -> bool:
    """An undo, release or timed release of a containment: it gives an account back."""
    return action.containment_id is not None and action.containment_role in (
        StepRole.RELEASE, StepRole.UNDO, StepRole.TIMER,
    )  # fmt: skip


def _timer_of(action: Action) -> int | None:
    """For a timed release: its containment, which may have expired once it ends."""
    return action.containment_id if action.containment_role == StepRole.TIMER else None


@dataclass(frozen=True)
class _Group:
    """Claimed actions of one type, run together against one directory: `where`, the directory as
    configured now (it names the lane, the limits and the metrics), or a refusal for all of them."""

    items: list[Claimed]
    definition: ActionDefinition | None
    connector: Connector | None
    refusal: ClampdownError | None
    where: str


class Worker:
    """Runs queued actions until stopped."""

    def __init__(
        self,
        store: ActionStore,
        connectors: dict[str, Connector],
        settings: EngineSettings,
        *,
        worker_id: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        lookup: Callable[[str], ActionDefinition] = get_action,
        gate: PolicyGate | None = None,
        kind: str = STANDALONE,
    ) -> None:
        self.id = worker_id or new_worker_id()
        self.kind = kind
        self._registry = WorkerRegistry(store.engine)
        # Leases are set and compared on the database's clock, never on this machine's. A clock
        # injected by a test moves the time of the whole system (services and workers alike), so
        # it is given to the queue explicitly.
        self._lease_clock: Clock | None = None if clock is SYSTEM_CLOCK else clock
        self._store = store
        self._queue = ActionQueue(store.engine, store.recorder)
        self._approvals = ApprovalStore(store.engine, store.recorder)
        self._connectors = connectors
        self._settings = settings
        self._clock = clock
        self._lookup = lookup
        self._gate = gate
        self._next_expiry_sweep = 0.0
        self._policy = RetryPolicy(
            settings.max_attempts, settings.backoff_base_seconds, settings.backoff_max_seconds
        )
        self._containments = ContainmentStore(store)
        self._writer = GroupWriter(self._queue, self.id, clock, patience_seconds=settings.lease_seconds)
        self._inflight: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Set when there may be something to claim: capacity freed, or the queue changed (this
        # process's doorbell, or a NOTIFY from another process: store.wakeup).
        self._wake = asyncio.Event()
        self._lanes: dict[str, Lane] = {}

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def _lane(self, instance: str, kind: str) -> Lane:
        """The requests in flight to one directory: `provider_concurrency` by its name, else by kind."""
        if instance not in self._lanes:
            limits = self._settings.provider_concurrency
            limit = limits.get(instance, limits.get(kind, self._settings.default_provider_concurrency))
            self._lanes[instance] = Lane(instance, limit)
        return self._lanes[instance]

    def _lease_now(self) -> datetime | None:
        """The time leases run from: None for the database's clock."""
        return self._lease_clock.now() if self._lease_clock is not None else None

    async def run(
        self, stop: asyncio.Event | None = None, *, until_drained: bool = False, until_idle: bool = False
    ) -> None:
        """Work until `stop` is set (then finish what is in flight); with `until_drained`, until no
        action is queued or running anywhere; with `until_idle`, until nothing is due now (a timed
        release waiting for its time does not keep it running)."""
        stop = stop or asyncio.Event()
        self._writer.start()
        await self._register()
        heartbeat = asyncio.create_task(self._heartbeat(stop), name=f"heartbeat-{self.id}")
        bell = doorbell_of(self._store.engine)
        bell.subscribe(self._wake)
        notices = asyncio.create_task(
            listen(self._store.engine, self._wake.set, stop), name=f"listen-{self.id}"
        )
        log.info("worker %s started", self.id)
        clean = False
        try:
            while not stop.is_set():
                self._wake.clear()  # before the claim: a wake-up during it is not lost
                claimed = await self._claim_once()
                if claimed:
                    continue
                if until_idle and not self._inflight:
                    break
                if until_drained and not self._inflight and await self._drained():
                    break
                await self._pause(stop)
            await self._drain_inflight()
            clean = True
        finally:
            bell.unsubscribe(self._wake)
            heartbeat.cancel()
            notices.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(heartbeat, notices, *self._tasks, return_exceptions=True)
            await self._writer.stop()
            if clean:
                await self._deregister()
            log.info("worker %s stopped", self.id)

    async def _register(self) -> None:
        host, pid = socket.gethostname(), os.getpid()
        try:
            await self._registry.register(self.id, host, pid, self.kind, self._settings.lease_seconds)
        except Exception as exc:  # the heartbeat registers it once the database answers
            log.warning("worker %s could not register: %s", self.id, exc)

    async def _deregister(self) -> None:
        try:
            await self._registry.deregister(self.id)
        except Exception as exc:  # its row expires with its lease
            log.warning("worker %s could not deregister: %s", self.id, exc)

    async def _drained(self) -> bool:
        flt = ActionFilter(statuses=(ActionStatus.QUEUED, ActionStatus.RUNNING))
        try:
            return not await self._store.count_by_status(flt)
        except Exception as exc:  # cannot tell: keep working
            log.warning("worker %s could not count what is left: %s", self.id, exc)
            return False

    async def _pause(self, stop: asyncio.Event) -> None:
        """Sleep for the poll interval (the fallback: timed actions fall due, a wake-up was lost),
        or less if woken (capacity freed, the queue changed) or told to stop."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        await asyncio.wait(
            waiters, timeout=self._settings.poll_interval_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for w in waiters:
            w.cancel()

    async def _drain_inflight(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _claim_once(self) -> int:
        free = self._settings.concurrency - len(self._inflight)
        # Claim in worthwhile batches: one claim per few freed slots would cost a query each.
        worthwhile = max(1, min(self._settings.claim_batch, self._settings.concurrency) // 4)
        if free <= 0 or (self._inflight and free < worthwhile):
            return 0
        try:
            claimed = await self._queue.claim_next_actions(
                self.id,
                min(free, self._settings.claim_batch),
                self._settings.lease_seconds,
                self._lease_now(),
                running=frozenset(self._inflight),
            )
        except Exception as exc:  # database down: keep the loop alive, try again later
            log.warning("worker %s could not claim actions: %s", self.id, exc)
            return 0
        if claimed:
            try:
                runnable = await self._settle_dependencies([Claimed(a, r) for a, r in claimed])
            except Exception as exc:  # the leases expire and the actions are claimed again
                log.warning("worker %s could not read what its claimed actions wait for: %s", self.id, exc)
                return len(claimed)
            self._dispatch(runnable)
        await self._sweep_expired_approvals()
        return len(claimed)

    async def _sweep_expired_approvals(self) -> None:
        loop_time = asyncio.get_running_loop().time()
        if loop_time < self._next_expiry_sweep:
            return
        self._next_expiry_sweep = loop_time + 5.0
        try:
            await self._approvals.expire_approvals(self._clock.now())
        except Exception as exc:
            log.warning("worker %s could not expire approvals: %s", self.id, exc)

    async def _settle_dependencies(self, claimed: list[Claimed]) -> list[Claimed]:
        """Steps whose predecessor failed are skipped; a timed release of a containment that is
        no longer the latest word does nothing and says why; a timed undo of an action that
        changed nothing has nothing to do; a timed undo restores the state read before its action
        and inherits what that action's approval covered. One asked to be cancelled while an
        attempt ran, whose worker then stopped, is cancelled rather than run again."""
        for item in [c for c in claimed if c.action.cancel_requested_by]:
            self._inflight.add(item.action.id)
            who = item.action.cancel_requested_by
            message = f"cancelled by {who} while an attempt ran; that attempt was interrupted"
            self._finish_now(item.action, ActionStatus.CANCELLED, "cancelled", message)
        claimed = [c for c in claimed if not c.action.cancel_requested_by]
        waits = [c.action.after_action_id for c in claimed if c.action.after_action_id]
        held = [c.action.containment_id for c in claimed if _holds_the_person(c.action)]
        handing_back = [c.action.account.id for c in claimed if _hands_back(c.action) and c.action.account]
        if not waits and not held and not handing_back:
            return claimed
        before = await self._store.get_many(waits)
        states = await self._containments.states_of([i for i in held if i is not None])
        holders = await self._containments.active_holders(handing_back)
        runnable: list[Claimed] = []
        for item in claimed:
            action, after = item.action, before.get(item.action.after_action_id or 0)
            ended = states.get(action.containment_id or 0) if _holds_the_person(action) else None
            newer = [
                c for c in holders.get(action.account.id if action.account else "", [])
                if _hands_back(action) and c > (action.containment_id or 0)
            ]  # fmt: skip
            if newer:
                await self._containments.adopt_by(action.containment_id or 0, newer[0])
                self._inflight.add(action.id)
                message = (
                    f"not run: containment {newer[0]} holds {action.target} now, "
                    f"the latest word over containment {action.containment_id}"
                )
                self._finish_now(action, ActionStatus.CANCELLED, "superseded", message)
            elif ended is not None and not ended[0].is_open:
                self._inflight.add(action.id)
                state, by = ended
                later = f" by containment {by}" if by else ""
                message = (
                    f"not run: containment {action.containment_id} was {state.value}{later}; "
                    "its steps and timed releases act only while it is the latest word"
                )
                self._finish_now(action, ActionStatus.CANCELLED, state.value, message)
            elif after is None:
                runnable.append(item)
            elif after.status is not ActionStatus.COMPLETED:
                self._inflight.add(action.id)
                message = f"skipped: action {after.id} ({after.type}) ended {after.status.value}"
                self._finish_now(action, ActionStatus.CANCELLED, "skipped", message)
            elif action.undoes_action_id == after.id and after.changed is False:
                self._inflight.add(action.id)
                message = f"nothing to undo: action {after.id} found the account already in that state"
                self._finish_now(action, ActionStatus.COMPLETED, None, message)
            elif action.undoes_action_id == after.id or action.containment_role == StepRole.TIMER:
                # A timer may undo an older step its own step repeated (store.containments).
                inherited = after.approval_rules if after.approved_by else ()
                # The step it undoes just ended: its own recorded result is the truth to restore.
                if action.undoes_action_id == after.id or item.restore_state is None:
                    restore = restore_point(after)
                else:
                    restore = item.restore_state
                runnable.append(Claimed(action, restore, inherited))
            else:
                runnable.append(item)
        return runnable

    def _finish_now(self, action: Action, status: ActionStatus, code: str | None, message: str) -> None:
        async def record() -> None:
            try:
                result = {"changed": False, "message": message} if code is None else None
                event = self._event(action, status, message)
                await self._writer.record_completion(
                    Completion(
                        action.id, action.attempts, status, result=result,
                        error_code=code, error_message=message if code else None, event=event,
                        ends_timer_of=_timer_of(action),
                    )
                )  # fmt: skip
            except Exception as exc:  # the write failed for good: the lease expires, it is claimed again
                log.warning("worker %s could not record that action %s %s: %s", self.id, action.id, code, exc)
            finally:
                self._inflight.discard(action.id)
                self._wake.set()

        self._spawn(record())

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task the worker waits for when it stops."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _event(self, action: Action, status: ActionStatus, message: str | None) -> AuditEvent:
        return outcome_event(action, status, f"worker:{self.id}", self._clock.now(), message)

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        interval = self._settings.lease_seconds / 3
        while not stop.is_set():
            await asyncio.sleep(interval)
            try:
                lease = self._settings.lease_seconds
                known = await self._queue.renew_leases(
                    self.id, list(self._inflight), lease, self._lease_now()
                )
            except Exception as exc:
                log.warning("worker %s could not renew leases: %s", self.id, exc)
                continue
            if not known:  # its row was lost (or never written: the database was down at start)
                await self._register()

    def _dispatch(self, claimed: Sequence[Claimed]) -> None:
        groups: dict[tuple[str, str | None], list[Claimed]] = defaultdict(list)
        for item in claimed:
            self._inflight.add(item.action.id)
            groups[item.action.type, item.action.instance].append(item)
        for (type_id, instance), items in groups.items():
            for group in self._plan(type_id, instance, items):
                self._spawn(self._run_group(group))

    def _plan(self, type_id: str, instance: str | None, items: list[Claimed]) -> list[_Group]:
        try:
            definition = self._lookup(type_id)
        except InvalidInput as exc:
            return [_Group(items, None, None, exc, instance or "")]
        where = find_instance(self._connectors, definition.provider, instance)
        connector = self._connectors.get(where) if where else None
        if where is None or connector is None:
            kind = definition.provider
            named = f"directory '{instance}' ({kind})" if instance else f"provider '{kind}'"
            refusal = ClampdownError(
                f"{named} is not configured on worker {self.id}", code="provider_not_configured"
            )
            return [_Group(items, definition, None, refusal, instance or kind)]
        size = connector.max_batch if isinstance(connector, BatchingConnector) else 1
        return [
            _Group(items[i : i + size], definition, connector, None, where)
            for i in range(0, len(items), size)
        ]

    async def _run_group(self, group: _Group) -> None:
        items, definition, connector, refusal = group.items, group.definition, group.connector, group.refusal
        try:
            runnable = [i for i in items if i.action.attempts <= self._policy.max_attempts]
            outcomes: dict[int, ItemOutcome] = {
                i.action.id: ClampdownError(
                    f"gave up after {i.action.attempts - 1} interrupted attempts", code="interrupted"
                )
                for i in items
                if i.action.attempts > self._policy.max_attempts
            }
            if refusal is not None or definition is None or connector is None:
                outcomes.update({i.action.id: refusal or ClampdownError("no connector") for i in runnable})
            elif runnable:
                results = await self._execute(connector, definition, runnable, group.where)
                outcomes.update({i.action.id: r for i, r in zip(runnable, results, strict=True)})
            await asyncio.gather(*(self._record(i.action, outcomes[i.action.id], group.where) for i in items))
        except Exception:
            # A store write failed for good: the leases expire and another attempt runs.
            log.exception("worker %s could not record outcomes", self.id)
        finally:
            for item in items:
                self._inflight.discard(item.action.id)
            self._wake.set()

    async def _execute(
        self, connector: Connector, definition: ActionDefinition, items: list[Claimed], where: str
    ) -> list[ItemOutcome]:
        # Each directory (as configured now: `where`) has its own limits: a setting by its
        # name, else by kind; its lane and metrics carry its name.
        overrides = self._settings.provider_attempt_timeout_seconds
        key = where if where in overrides else definition.provider
        budget = overrides.get(key, self._settings.attempt_timeout_seconds)
        setting = (
            f"engine.provider_attempt_timeout_seconds.{key}"
            if key in overrides
            else "engine.attempt_timeout_seconds"
        )
        try:
            lane = self._lane(where, definition.provider)
            guard = self._gate.hold if self._gate else None
            # The lease is renewed by the heartbeat while this waits; the budget bounds the wait.
            return await asyncio.wait_for(
                execute_group(connector, definition, items, self._writer.record_resolutions, lane, guard),
                budget,
            )
        except TimeoutError:
            message = (
                f"timed out: {definition.provider} did not finish {definition.id} within {budget:g} s "
                f"({setting}); the provider is not answering or too slow"
            )
            log.warning("worker %s: %s for a group of %d", self.id, message, len(items))
            return [TransientError(message, code="attempt_timeout")] * len(items)
        except Exception as exc:  # a bug or an unexpected failure of the whole group
            log.exception("%s failed for a group of %d", definition.id, len(items))
            return [exc] * len(items)

    def _interrupted(self, action: Action) -> tuple[AttemptRecord, ...]:
        """Records for earlier attempts that left no outcome: their worker died or lost its lease."""
        seen = {h.attempt for h in action.history}
        now = self._clock.now()
        return tuple(
            AttemptRecord(n, "unknown", now, "interrupted", "the worker stopped before recording an outcome")
            for n in range(1, action.attempts)
            if n not in seen
        )

    def _history(
        self, action: Action, error: ClampdownError, retry_at: datetime | None
    ) -> tuple[AttemptRecord, ...]:
        current = AttemptRecord(
            action.attempts, self.id, self._clock.now(), error.code, error.message, retry_at
        )
        return (*action.history, *self._interrupted(action), current)

    async def _record(self, action: Action, outcome: ItemOutcome, where: str) -> None:
        if isinstance(outcome, AwaitApproval):
            OUTCOMES.labels(action.type, "held").inc()
            now = self._clock.now()
            lifetime = self._gate.approval_lifetime if self._gate else timedelta(hours=4)
            waiting = replace(action, status=ActionStatus.AWAITING_APPROVAL, approval_reason=outcome.reason)
            event = requested_event(waiting)
            held = Held(action.id, action.attempts, outcome.reason, outcome.rules, now + lifetime, event)
            await self._writer.record_hold(held)
            return
        if isinstance(outcome, ActionOutcome):
            OUTCOMES.labels(action.type, "completed" if outcome.changed else "unchanged").inc()
            interrupted = self._interrupted(action)
            completion = Completion(
                action.id,
                action.attempts,
                ActionStatus.COMPLETED,
                result=outcome.to_json(),
                provider_request_id=outcome.provider_request_id,
                history=(*action.history, *interrupted) if interrupted else None,
                event=self._event(action, ActionStatus.COMPLETED, outcome.message),
                ends_timer_of=_timer_of(action),
            )
            try:
                await self._writer.record_completion(completion)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                # The change was made but its details cannot be stored: record that it was, and
                # why the details are missing, rather than run it again.
                log.error("action %s: its outcome could not be stored: %s", action.id, exc)
                message = f"done, but its details could not be stored: {str(exc)[:500]}"
                await self._writer.record_completion(
                    replace(
                        completion,
                        result={"changed": outcome.changed, "message": message},
                        provider_request_id=None,
                        history=None,
                        event=self._event(action, ActionStatus.COMPLETED, message),
                    )
                )
            return
        if isinstance(outcome, ClampdownError):
            error = outcome
        else:
            # Unexpected: treated as transient, so a passing fault is retried and a bug ends failed.
            log.error("action %s: unexpected %s: %s", action.id, type(outcome).__name__, outcome)
            error = TransientError(
                f"unexpected error: {type(outcome).__name__}: {outcome}", code="unexpected_error"
            )
        transient = isinstance(error, TransientError)
        if transient and is_throttling(error.code):
            THROTTLED.labels(where).inc()
        if transient and self._policy.should_retry(action.attempts):
            OUTCOMES.labels(action.type, "retried").inc()
            hint = error.retry_after if isinstance(error, TransientError) else None
            retry_at = self._clock.now() + timedelta(seconds=self._policy.delay(action.attempts, hint))
            await self._writer.record_retry(
                Retry(
                    action.id,
                    action.attempts,
                    retry_at,
                    error.code,
                    error.message,
                    self._history(action, error, retry_at),
                )
            )
            return
        OUTCOMES.labels(action.type, "failed").inc()
        message = error.message
        if transient:
            message = f"{message} (gave up after {action.attempts} attempts)"
        await self._writer.record_completion(
            Completion(
                action.id,
                action.attempts,
                ActionStatus.FAILED,
                error_code=error.code,
                error_message=message,
                provider_request_id=getattr(error, "provider_request_id", None),
                history=self._history(action, error, None),
                event=self._event(action, ActionStatus.FAILED, message),
                ends_timer_of=_timer_of(action),
            )
        )
