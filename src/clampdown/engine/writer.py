"""Group commit: many concurrent action tasks share a few transactions.

Each task hands its write to the writer and awaits it; the writer flushes everything pending in
one transaction per kind. A bulk of thousands of actions then costs a few writes per flush
instead of a few per action, while each task still knows when its write is durable.

A write that fails (the database restarting, a fail-over) is tried again, with a capped back-off,
for as long as the worker's leases may still hold: the actions' outcomes then land once the
database is back and nothing is run twice. After that another worker may hold the actions, and
the queue's fence would refuse the write anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from clampdown.clock import Clock
from clampdown.db.database import is_data_error
from clampdown.store.queue import ActionQueue, Completion, Held, Resolution, Retry

log = logging.getLogger(__name__)
T = TypeVar("T")
_LINGER_SECONDS = 0.005
_FIRST_BACKOFF_SECONDS = 0.2
_MAX_BACKOFF_SECONDS = 2.0


class _Lane(Generic[T]):
    """Pending writes of one kind and the futures of the tasks waiting on them."""

    def __init__(self) -> None:
        self.items: list[tuple[T, asyncio.Future[None]]] = []

    def take(self) -> list[tuple[T, asyncio.Future[None]]]:
        taken, self.items = self.items, []
        return taken


class GroupWriter:
    """Coalesces resolutions, completions and retries of one worker into batched transactions."""

    def __init__(
        self, queue: ActionQueue, worker_id: str, clock: Clock, *, patience_seconds: float = 60.0
    ) -> None:
        self._store = queue
        self._patience = patience_seconds  # how long a failing write is tried again (the lease)
        self._worker = worker_id
        self._clock = clock
        self._resolutions: _Lane[Resolution] = _Lane()
        self._completions: _Lane[Completion] = _Lane()
        self._retries: _Lane[Retry] = _Lane()
        self._holds: _Lane[Held] = _Lane()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flushing: asyncio.Future[None] | None = None  # the flush in progress, if any

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"writer-{self._worker}")

    async def stop(self) -> None:
        """Let a flush in progress finish, flush what is pending, then stop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self._flush()

    async def _submit(self, lane: _Lane[T], items: Sequence[T]) -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for item in items:
            fut: asyncio.Future[None] = loop.create_future()
            lane.items.append((item, fut))
            futures.append(fut)
        self._wake.set()
        if len(futures) == 1:
            await futures[0]  # the common case (one completion): no gather around one future
        else:
            await asyncio.gather(*futures)

    async def record_resolutions(self, items: Sequence[Resolution]) -> None:
        """Durably store accounts and states-before; returns once committed."""
        await self._submit(self._resolutions, items)

    async def record_completion(self, item: Completion) -> None:
        await self._submit(self._completions, [item])

    async def record_retry(self, item: Retry) -> None:
        await self._submit(self._retries, [item])

    async def record_hold(self, item: Held) -> None:
        await self._submit(self._holds, [item])

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # Linger a moment so the writes of tasks finishing together share one transaction.
            await asyncio.sleep(_LINGER_SECONDS)
            self._wake.clear()
            # Shielded: a batch taken from its lanes is written and answered even if the loop is
            # cancelled meanwhile (stop() waits for it), or its callers would wait for ever.
            self._flushing = asyncio.ensure_future(self._flush())
            try:
                await asyncio.shield(self._flushing)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in a flush must not end the writer: every later write would hang
                log.exception("worker %s: a group write failed", self._worker)

    async def _flush(self) -> None:
        await self._write(self._resolutions, lambda xs: self._store.record_resolutions(self._worker, xs))
        await self._write(
            self._completions, lambda xs: self._store.finish(self._worker, xs, self._clock.now())
        )
        await self._write(
            self._retries, lambda xs: self._store.reschedule(self._worker, xs, self._clock.now())
        )
        await self._write(self._holds, lambda xs: self._store.hold_for_approval(self._worker, xs))

    async def _write(self, lane: _Lane[T], write: Callable[[list[T]], Awaitable[None]]) -> None:
        taken = lane.take()
        if taken:
            await self._write_taken(taken, write, self._patience)

    async def _write_taken(
        self,
        taken: list[tuple[T, asyncio.Future[None]]],
        write: Callable[[list[T]], Awaitable[None]],
        patience: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + patience
        error: BaseException | None = None
        attempt = 0
        while True:
            attempt += 1
            try:
                await write([item for item, _ in taken])
                error = None
                break
            except Exception as exc:
                error = exc
                if is_data_error(exc):
                    break  # the data is at fault: the same write fails the same way
                left = give_up_at - loop.time()  # the database blinked or restarts: try again
                if left <= 0:
                    log.warning("store write failed (try %d), giving up after %.0f s: %s",
                                attempt, patience, exc)  # fmt: skip
                    break
                delay = min(_FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1), _MAX_BACKOFF_SECONDS, left)
                log.warning("store write failed (try %d, again in %.1f s): %s", attempt, delay, exc)
                await asyncio.sleep(delay)
        if error is not None and len(taken) > 1 and is_data_error(error):
            # One bad row must not fail the many sharing its transaction: write the halves apart,
            # until only the rows at fault fail (each with its own error).
            log.warning("a group write of %d failed (%s); writing it in parts", len(taken), error)
            half = len(taken) // 2
            await self._write_taken(taken[:half], write, 0)
            await self._write_taken(taken[half:], write, 0)
            return
        for _, fut in taken:
            if fut.done():
                continue
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
