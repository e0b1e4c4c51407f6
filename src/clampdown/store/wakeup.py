"""Wake-ups: a worker learns at once that the queue changed, instead of at its next poll.

A commit that queues an action or ends one (its successor may be claimable now) rings two bells:

- in this process, the `Doorbell` of its database engine: every worker of this process on that
  engine wakes. The API and the embedded worker of `clampdown serve` share one engine, so a
  request on SQLite is claimed as soon as it is committed;
- across processes (PostgreSQL), NOTIFY on `CHANNEL`, sent inside the transaction and so
  delivered only if it commits; each worker LISTENs on a connection of its own (`listen`).

Polling stays as the fallback, so a lost wake-up (the listening connection dropped, the database
restarting) costs at most one poll interval, never an action.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import QUEUE_EVENTS

log = logging.getLogger(__name__)

CHANNEL = "clampdown_queue"
_RECONNECT_FIRST_SECONDS = 0.5
_RECONNECT_MAX_SECONDS = 10.0


class Doorbell:
    """The workers of this process waiting on one database: `ring` wakes them all."""

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}

    def subscribe(self, event: asyncio.Event) -> None:
        """Set `event` at every ring, from any thread, until `unsubscribe`."""
        self._waiting[event] = asyncio.get_running_loop()

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._waiting.pop(event, None)

    def ring(self) -> None:
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for event, loop in list(self._waiting.items()):
            if loop is here:
                event.set()
            elif loop.is_closed():
                self._waiting.pop(event, None)
            else:
                loop.call_soon_threadsafe(event.set)


_BELLS: weakref.WeakKeyDictionary[Any, Doorbell] = weakref.WeakKeyDictionary()


def doorbell_of(engine: AsyncEngine) -> Doorbell:
    """The doorbell of the workers of this process on `engine`'s database."""
    key = engine.sync_engine
    bell = _BELLS.get(key)
    if bell is None:
        bell = _BELLS[key] = Doorbell()
    return bell


def wakes(events: Sequence[AuditEvent]) -> bool:
    """Whether a transaction that recorded `events` changed what a worker may claim."""
    return any(e.event in QUEUE_EVENTS for e in events)


async def announce(conn: AsyncConnection) -> None:
    """Tell the workers of other processes, when the caller's transaction commits (PostgreSQL;
    on SQLite every worker shares the server's process and its doorbell)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


async def listen(engine: AsyncEngine, on_notice: Callable[[], None], stop: asyncio.Event) -> None:
    """Call `on_notice` at every NOTIFY on `CHANNEL` until `stop` is set, on a connection held for
    that alone; when it drops, connect again with back-off (and call `on_notice` once connected:
    a notice may have been missed meanwhile). Returns at once on a database without NOTIFY."""
    if engine.dialect.name != "postgresql":
        return
    delay = _RECONNECT_FIRST_SECONDS
    while not stop.is_set():
        try:
            await _listen_once(engine, on_notice, stop)
            delay = _RECONNECT_FIRST_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("listening for queue notices failed (%s); polling until it is back", exc)
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, _RECONNECT_MAX_SECONDS)


async def _listen_once(engine: AsyncEngine, on_notice: Callable[[], None], stop: asyncio.Event) -> None:
    lost = asyncio.Event()

    def notified(*_: object) -> None:
        on_notice()

    def terminated(*_: object) -> None:
        lost.set()

    async with engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's connection
        await raw.add_listener(CHANNEL, notified)
        raw.add_termination_listener(terminated)
        try:
            on_notice()  # what was queued while nobody listened
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            try:
                await _watch(raw, waits)
            finally:
                for w in waits:
                    w.cancel()
        finally:
            raw.remove_termination_listener(terminated)
            if not raw.is_closed():
                try:
                    await raw.remove_listener(CHANNEL, notified)
                except Exception:  # the connection is going away anyway
                    await conn.invalidate()
            else:
                await conn.invalidate()


async def _watch(raw: Any, waits: Sequence[asyncio.Future[Any]]) -> None:
    """Until stop or the connection is lost; a connection that dies without telling (a network
    cut) is found by a cheap query every so often."""
    while True:
        done, _ = await asyncio.wait(waits, timeout=15.0, return_when=asyncio.FIRST_COMPLETED)
        if done:
            return
        await asyncio.wait_for(raw.execute("SELECT 1"), 5.0)
