"""Running one group of claimed actions of a single type on its connector.

The order of steps is what makes a crash safe: resolve the account, read its state, make that
state durable, and only then change anything. A retry after a crash reads the state again, finds
the change already made, and the connector answers "already in the requested state".
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TypeVar, cast

from clampdown.catalog import ActionDefinition
from clampdown.connectors.base import BatchingConnector, BatchResolver, Connector, action_method
from clampdown.connectors.instances import stamped
from clampdown.engine.metrics import PROVIDER_LATENCY
from clampdown.errors import PermanentError
from clampdown.model import Account, AccountState, Action, ActionContext, ActionOutcome
from clampdown.policy import Hold
from clampdown.store.queue import Resolution

T = TypeVar("T")
# The policy gate's check on the account just read (PolicyGate.hold): None, or why not now.
Guard = Callable[[Action, Account, AccountState, tuple[str, ...]], Hold | None]
PersistResolutions = Callable[[Sequence[Resolution]], Awaitable[None]]


@dataclass(frozen=True)
class Claimed:
    """A claimed action and, for an undo, the state it must restore; for a timed release, the
    rules its step's approval covered, which it inherits."""

    action: Action
    restore_state: AccountState | None = None
    inherited_rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class AwaitApproval:
    """The gate found a rule no approval of this action covers: it waits for a second person."""

    reason: str
    rules: tuple[str, ...]


# Per item: the outcome, the exception that ended this attempt, or back to awaiting approval.
ItemOutcome = ActionOutcome | BaseException | AwaitApproval


async def _gather_each(calls: Sequence[Awaitable[T]]) -> list[T | BaseException]:
    if len(calls) == 1:
        # A group of one (every group of a connector that does not batch): awaited in place, as
        # gather would, without a task and a future per step.
        try:
            return [await calls[0]]
        except Exception as exc:  # each item's own error, as gather(return_exceptions=True) gives it
            return [exc]
    return list(await asyncio.gather(*calls, return_exceptions=True))


_BATCHING: dict[type, bool] = {}
_RESOLVING: dict[type, bool] = {}


def _batches(connector: Connector) -> bool:
    """Whether `connector` is a BatchingConnector, asked once per class: a runtime-checkable
    protocol's isinstance walks its attributes each time, twice per group."""
    kind = type(connector)
    if kind not in _BATCHING:
        _BATCHING[kind] = isinstance(connector, BatchingConnector)
    return _BATCHING[kind]


def _resolves_many(connector: Connector) -> bool:
    """Whether `connector` is a BatchResolver (asked once per class, as `_batches`)."""
    kind = type(connector)
    if kind not in _RESOLVING:
        _RESOLVING[kind] = isinstance(connector, BatchResolver)
    return _RESOLVING[kind]


class Lane:
    """One configured directory's share of a worker: its name (the `provider` label of the
    metrics: the kind's name where there is one directory of it) and the calls in flight it allows.

    A later step of a group under way (reading states, acting) takes a free slot before a lookup
    of a group claimed after it: groups finish rather than every claimed action being looked up
    first, so the changes start at once and run beside the next groups' lookups."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self._free = limit
        # Waiting for a slot: later steps first, then lookups; each in arrival order.
        self._waiting: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    @property
    def free(self) -> int:
        """The slots no call holds now."""
        return self._free

    @asynccontextmanager
    async def slot(self, step: str) -> AsyncIterator[None]:
        await self._acquire(1 if step == "resolve" else 0)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self._free > 0:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[rank].append(turn)
        try:
            await turn  # a release hands its slot over by completing the turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a slot just as it was cancelled: pass it on
            elif turn in self._waiting[rank]:
                self._waiting[rank].remove(turn)
            raise

    def _release(self) -> None:
        for waiting in self._waiting:
            while waiting:
                turn = waiting.popleft()
                if not turn.done():
                    turn.set_result(None)
                    return
        self._free += 1


async def _limited(lane: Lane, call: Awaitable[T], step: str) -> T:
    async with lane.slot(step):
        with PROVIDER_LATENCY.labels(lane.name, step).time():
            return await call


async def _resolve(
    connector: Connector, items: Sequence[Claimed], lane: Lane
) -> list[Account | BaseException]:
    def found(item: Claimed, account: Account) -> Account:
        return stamped(account, item.action.instance) if item.action.instance else account

    unknown = [i for i, item in enumerate(items) if item.action.account is None]
    if len(unknown) > 1 and _resolves_many(connector):
        finding = cast(BatchResolver, connector).resolve_users([items[i].action.target for i in unknown])
        answers = dict(zip(unknown, await _limited(lane, finding, "resolve"), strict=True))
        out: list[Account | BaseException] = []
        for i, item in enumerate(items):
            if item.action.account is not None:
                out.append(item.action.account)
                continue
            answer = answers[i]
            out.append(found(item, answer) if isinstance(answer, Account) else answer)
        return out

    async def one(item: Claimed) -> Account:
        if item.action.account is not None:
            return item.action.account
        resolving = connector.resolve_user(item.action.target)
        return found(item, await _limited(lane, resolving, "resolve"))

    return await _gather_each([one(i) for i in items])


async def _read_states(
    connector: Connector, accounts: Sequence[Account], lane: Lane
) -> list[AccountState | BaseException]:
    if len(accounts) > 1 and _batches(connector):
        reading = cast(BatchingConnector, connector).read_states(list(accounts))
        return list(await _limited(lane, reading, "read"))
    return await _gather_each([_limited(lane, connector.read_state(a), "read") for a in accounts])


def _context(item: Claimed, state: AccountState) -> ActionContext:
    action = item.action
    return ActionContext(
        action_id=action.id,
        reason=action.reason,
        requested_by=action.requested_by,
        # On a retry the first state read is the true "before"; this attempt's read may be after.
        state_before=action.state_before or state,
        restore_state=item.restore_state,
        seal_to=action.seal_key,
    )


async def _perform(
    connector: Connector,
    definition: ActionDefinition,
    pairs: Sequence[tuple[Account, ActionContext]],
    lane: Lane,
) -> list[ItemOutcome]:
    if len(pairs) > 1 and _batches(connector):
        batch = cast(BatchingConnector, connector).perform_batch(definition.method, list(pairs))
        return list(await _limited(lane, batch, "perform"))
    method = action_method(connector, definition.method)
    done = await _gather_each([_limited(lane, method(account, ctx), "perform") for account, ctx in pairs])
    return list(done)


def _credit_earlier_attempt(definition: ActionDefinition, action: Action, result: ItemOutcome) -> ItemOutcome:
    """An attempt cut off after the provider changed the account finds it "already" done on the
    retry; the state read before the first attempt shows this action made the change, so it
    counts as changed (or a release would leave it undone)."""
    before = action.state_before
    if not isinstance(result, ActionOutcome) or result.changed or before is None or definition.effect is None:
        return result
    key, wanted = definition.effect
    if before.value_at(key) == wanted:
        return result
    message = f"done by an earlier attempt of this action that ended before recording it ({result.message})"
    return replace(result, changed=True, message=message)


async def execute_group(
    connector: Connector,
    definition: ActionDefinition,
    items: Sequence[Claimed],
    persist: PersistResolutions,
    lane: Lane,
    guard: Guard | None = None,
) -> list[ItemOutcome]:
    """Run `items` (all of `definition`'s type, in one directory); one outcome per item, in order.
    `lane` bounds the calls in flight to the directory; it is not held while waiting for the database."""
    outcomes: list[ItemOutcome | None] = [None] * len(items)
    accounts = await _resolve(connector, items, lane)
    ok = [i for i, a in enumerate(accounts) if isinstance(a, Account)]
    for i, a in enumerate(accounts):
        if not isinstance(a, Account):
            outcomes[i] = a
    states = await _read_states(connector, [accounts[i] for i in ok], lane)  # type: ignore[misc]
    ready: list[tuple[int, Account, AccountState]] = []
    for i, state in zip(ok, states, strict=True):
        account = accounts[i]
        assert isinstance(account, Account)
        if not isinstance(state, AccountState):
            outcomes[i] = state
            continue
        hold = guard(items[i].action, account, state, items[i].inherited_rules) if guard else None
        if hold is not None and hold.refuse:
            outcomes[i] = PermanentError(hold.message, code="protected_account")
            continue
        if hold is not None:
            outcomes[i] = AwaitApproval(hold.message, hold.rules)
            continue
        ready.append((i, account, state))
    if ready:
        await persist(
            [
                Resolution(items[i].action.id, items[i].action.attempts, account, state)
                for i, account, state in ready
            ]
        )
        pairs = [(account, _context(items[i], state)) for i, account, state in ready]
        results = await _perform(connector, definition, pairs, lane)
        for (i, _, _), result in zip(ready, results, strict=True):
            outcomes[i] = _credit_earlier_attempt(definition, items[i].action, result)
    return [o if o is not None else RuntimeError("no outcome recorded") for o in outcomes]
