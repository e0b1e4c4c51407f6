"""What every store that writes audited changes shares: the recorder, in the same transaction,
and the wake-up of the workers when those changes queued or ended an action (store.wakeup)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.audit.chain import AuditEvent
from clampdown.audit.recorder import EventRecorder
from clampdown.store.wakeup import announce, doorbell_of, wakes


class RecordingStore:
    """A store over `engine` whose changes are recorded by `recorder` with their cause."""

    def __init__(self, engine: AsyncEngine, recorder: EventRecorder | None = None) -> None:
        self.engine = engine
        self.recorder = recorder

    async def _record(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        if wakes(events):  # first: the audit chain's lock, taken by the append, is held to the commit
            await announce(conn)
        if self.recorder is not None and events:
            await self.recorder.record_in(conn, events)

    def _after_commit(self, events: Sequence[AuditEvent]) -> None:
        if self.recorder is not None and events:
            self.recorder.after_commit(events)
        if wakes(events):
            doorbell_of(self.engine).ring()
