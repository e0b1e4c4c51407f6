"""Making checkpoints of the audit chain: the head signed, stored beside the chain and sent out as an
`audit.checkpoint` event (webhooks, syslog) so that a copy exists outside the database too.

A checkpoint is made once `every_entries` entries are new, or once `interval` has passed with any
new entry; an idle chain gets none. Every process that writes the chain (the server, the workers)
runs the loop; two making the same checkpoint at once is harmless (the sequence number is unique).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.checkpoint import Checkpoint
from clampdown.audit.events import checkpoint_event
from clampdown.audit.recorder import EventRecorder
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import AuditSettings
from clampdown.db.tables import audit_checkpoints, audit_log

log = logging.getLogger(__name__)


class Anchor:
    """Signs checkpoints of the chain's head with the configured key."""

    def __init__(
        self,
        engine: AsyncEngine,
        key: bytes,
        settings: AuditSettings,
        recorder: EventRecorder | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.engine = engine
        self.key = key
        self.settings = settings
        self.recorder = recorder
        self.clock = clock

    async def _latest(self) -> Checkpoint | None:
        """The newest stored checkpoint whose signature holds (a forged one is never built upon)."""
        c = audit_checkpoints.c
        query = select(audit_checkpoints).order_by(c.seq.desc()).limit(20)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        for r in rows:
            cp = Checkpoint(r["seq"], r["hash"], r["entries"], r["at"], r["signature"])
            if cp.signature_holds(self.key):
                return cp
        return None

    async def pending_entries(self) -> int:
        """How many entries the latest checkpoint does not cover yet."""
        latest = await self._latest()
        query = select(func.count()).select_from(audit_log)
        if latest is not None:
            query = query.where(audit_log.c.seq > latest.seq)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def checkpoint(self) -> Checkpoint | None:
        """Sign the current head and record it; None when there is nothing new to sign."""
        latest = await self._latest()
        head_query = select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        try:
            async with self.engine.begin() as conn:
                head = (await conn.execute(head_query)).first()
                if head is None or (latest is not None and head.seq <= latest.seq):
                    return None
                # Counted on from the latest checkpoint: the count stays cheap on a long chain.
                counted = select(func.count()).select_from(audit_log).where(audit_log.c.seq <= head.seq)
                if latest is not None:
                    counted = counted.where(audit_log.c.seq > latest.seq)
                entries = int((await conn.execute(counted)).scalar_one()) + (latest.entries if latest else 0)
                cp = Checkpoint.signed(self.key, int(head.seq), str(head.hash), entries, self.clock.now())
                await conn.execute(insert(audit_checkpoints).values(**cp.to_json() | {"at": cp.at}))
                event = checkpoint_event(cp)
                if self.recorder is not None:
                    await self.recorder.emit_in(conn, [event])
        except IntegrityError:  # another process signed this head a moment ago
            return None
        if self.recorder is not None:
            self.recorder.after_commit([event])
        return cp

    async def run(self, stop: asyncio.Event, poll_seconds: float = 5.0) -> None:
        """Make checkpoints until `stop` is set, then one last one for what is new."""
        interval = self.settings.checkpoint_interval_seconds
        poll = min(poll_seconds, interval)
        last = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll)
            try:
                due = time.monotonic() - last >= interval
                if due or await self.pending_entries() >= self.settings.checkpoint_every_entries:
                    await self.checkpoint()
                    last = time.monotonic()
            except Exception as exc:  # the database blinked: the next round tries again
                log.warning("audit checkpoint failed: %s", exc)
        try:
            await self.checkpoint()
        except Exception as exc:
            log.warning("the last audit checkpoint failed: %s", exc)
