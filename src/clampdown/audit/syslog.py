"""Syslog out (RFC 5424) for SIEMs, each message as JSON or as CEF, through an outbox.

An event's frame is committed to `syslog_outbox` in the transaction of its cause (so it exists if and
only if the event does), and a background sender (the supervised job "syslog") delivers the rows in
order over one persistent connection: a TCP stream (RFC 6587 octet counting) or a UDP datagram
transport. Nothing on the request or action path waits for the receiver: when it is down, stuck
or slow, the events wait in the outbox, the sender reconnects with back-off (the one retry policy)
and delivers them, oldest first, once it answers again. In memory it holds one batch at a time.

Delivery is at least once. Over TCP a row written to the socket is not yet delivered: a receiver
that accepts and never reads swallows whole batches into its socket buffer, and loses them when it
is restarted. So a row leaves the outbox only once the receiver has shown it read it: it closed the
connection cleanly (a receiver closing with unread data resets it instead), or it answered the
sender's own half-close with its own (what a syslog receiver does at the end of a stream). The
sender asks that when it has nothing to send for a moment, or has RETAIN_ROWS rows unconfirmed, and
at shutdown. Rows not confirmed go back to the outbox, oldest first, and are sent again on the next
connection. A sender that dies after writing and before confirming sends them again too. One sender
at a time per database (a claim on the rows, held by a lease) keeps the order when several
processes run the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown import __version__
from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import SyslogSettings
from clampdown.db.tables import syslog_outbox
from clampdown.retry import RetryPolicy

log = logging.getLogger(__name__)
BATCH = 500  # rows claimed and written at once: what the sender holds in memory
LEASE = timedelta(seconds=60)  # a claim another process's sender respects, in case this one dies
CONNECT_SECONDS = 5.0
WRITE_SECONDS = 10.0  # a receiver that reads nothing for this long is taken as stuck: reconnect
POLL_SECONDS = 1.0  # how often to look for rows queued by other processes
FLUSH_SECONDS = 3.0  # at shutdown: how long to try delivering what is left (the rest stays queued)
CONFIRM_IDLE_SECONDS = 1.0  # nothing sent for this long: ask the receiver to confirm what it has
CONFIRM_SECONDS = 5.0  # how long the receiver may take to answer the sender's half-close
RETAIN_ROWS = 5000  # rows written and not yet confirmed, at most: then the receiver is asked at once
RECONNECT = RetryPolicy(max_attempts=1_000_000, base_seconds=0.5, max_seconds=30.0)
_SENDER_LOCK = 7_241_978  # a PostgreSQL advisory lock: one claim at a time
_FACILITY_SECURITY = 13  # log audit
_SEVERITY: dict[str, int] = {  # warning, notice
    EventName.ACCESS_DENIED: 4,
    EventName.ACTION_FAILED: 4,
    EventName.APPROVAL_REJECTED: 5,
}
_NIL = "-"


def _cef_escape(value: object, header: bool = False) -> str:
    text = str(value if value is not None else "")
    text = text.replace("\\", "\\\\")
    return text.replace("|", "\\|") if header else text.replace("=", "\\=").replace("\n", "\\n")


def cef(event: AuditEvent) -> str:
    """ArcSight Common Event Format: header fields, then key=value extensions."""
    severity = 7 if event.event == EventName.ACCESS_DENIED else 3
    ext = {
        "rt": event.at.isoformat(),
        "suser": event.actor,
        "duser": event.subject,
        "act": event.data.get("type", event.event),
        "cs1Label": "reason",
        "cs1": event.data.get("reason"),
        "outcome": event.data.get("status"),
    }
    extension = " ".join(f"{k}={_cef_escape(v)}" for k, v in ext.items() if v is not None)
    head = "|".join(
        _cef_escape(x, header=True) for x in ("Clampdown", "Clampdown", __version__, event.event, event.event)
    )
    return f"CEF:0|{head}|{severity}|{extension}"


def rfc5424(event: AuditEvent, body: str, hostname: str) -> str:
    """<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG."""
    pri = _FACILITY_SECURITY * 8 + _SEVERITY.get(event.event, 6)
    msgid = event.event.replace(".", "_")[:32]
    return f"<{pri}>1 {event.at.isoformat()} {hostname} clampdown {os.getpid()} {msgid} {_NIL} {body}"


class _Transport:
    """One persistent connection to the receiver, opened on first use and after a failure."""

    def __init__(self, settings: SyslogSettings, connect_seconds: float, write_seconds: float) -> None:
        self.settings = settings
        self.connect_seconds = connect_seconds
        self.write_seconds = write_seconds
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._datagram: asyncio.DatagramTransport | None = None

    async def send(self, messages: Sequence[str]) -> None:
        """Write every message, or raise OSError (TimeoutError included) with the connection closed."""
        frames = [m.encode() for m in messages]
        if self.settings.protocol == "udp":
            datagram = await self._open_datagram()
            for frame in frames:
                datagram.sendto(frame)
            return
        _, writer = await self._open_stream()
        try:
            writer.write(b"".join(f"{len(f)} ".encode() + f for f in frames))  # RFC 6587 octet counting
            await asyncio.wait_for(writer.drain(), self.write_seconds)
        except BaseException:
            self.close()
            raise

    @property
    def confirms(self) -> bool:
        """Whether what is written waits for the receiver's confirmation (TCP; UDP cannot)."""
        return self.settings.protocol == "tcp" and self.settings.confirm_delivery

    def ended(self) -> bool | None:
        """None while the connection is open (or there is none); once it has ended, whether the
        receiver closed it cleanly, having read everything: a peer that closes with unread data
        resets the connection, and what was still unacknowledged on our side is not known read."""
        if self._stream is None:
            return None
        reader, writer = self._stream
        if not reader.at_eof() and not writer.is_closing():
            return None
        clean = reader.at_eof() and reader.exception() is None and _socket_settled(writer)
        self.close()
        return clean

    async def confirm(self, seconds: float) -> bool:
        """Half-close the connection and wait for the receiver to close its side: True if it did in
        `seconds` (it read everything written), False if not or it broke. The connection is closed
        either way; the next send opens a new one."""
        if self._stream is None:
            return False
        reader, writer = self._stream
        try:
            if writer.can_write_eof():
                writer.write_eof()
            async with asyncio.timeout(seconds):
                while await reader.read(65536):
                    pass  # a receiver has nothing to say; whatever it says is not an answer
            return reader.exception() is None
        except (OSError, TimeoutError):
            return False
        finally:
            self.close(abort=True)

    async def _open_stream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._stream is not None:
            reader, writer = self._stream
            if not reader.at_eof() and not writer.is_closing():  # the receiver has not hung up
                return self._stream
            self.close()
        address = (self.settings.host, self.settings.port)
        self._stream = await asyncio.wait_for(asyncio.open_connection(*address), self.connect_seconds)
        return self._stream

    async def _open_datagram(self) -> asyncio.DatagramTransport:
        if self._datagram is None or self._datagram.is_closing():
            loop = asyncio.get_running_loop()
            self._datagram, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=(self.settings.host, self.settings.port)
            )
        return self._datagram

    def close(self, abort: bool = False) -> None:
        if self._stream is not None:
            # Gracefully unless asked: what the receiver has not read yet still reaches it if it
            # reads again (what was not confirmed is sent again too: repeated, never lost).
            writer = self._stream[1]
            if abort and not writer.is_closing():
                writer.transport.abort()
            writer.close()
            self._stream = None
        if self._datagram is not None:
            self._datagram.close()
            self._datagram = None


class SyslogOutput:
    """Queues events for one syslog receiver in the caller's transaction; `run` delivers them."""

    def __init__(
        self, engine: AsyncEngine, settings: SyslogSettings, *, clock: Clock = SYSTEM_CLOCK,
        policy: RetryPolicy = RECONNECT, connect_seconds: float = CONNECT_SECONDS,
        write_seconds: float = WRITE_SECONDS, poll_seconds: float = POLL_SECONDS,
    ) -> None:  # fmt: skip
        self.engine = engine
        self.settings = settings
        self.hostname = socket.gethostname()
        self.clock = clock
        self.policy = policy
        self.poll_seconds = poll_seconds
        self.address = f"{settings.host}:{settings.port}/{settings.protocol}"
        self._transport = _Transport(settings, connect_seconds, write_seconds)
        self._wake = asyncio.Event()
        self._queued = False  # this process queued rows since its outbox was last seen empty
        self._failing = False  # the last attempt failed: shutdown does not wait for the receiver
        self.confirm_idle_seconds = CONFIRM_IDLE_SECONDS
        self.confirm_seconds = CONFIRM_SECONDS
        # Rows written on the current connection that the receiver has not confirmed yet: still in
        # the outbox, claimed by this sender, deleted once confirmed, released for a resend if not.
        self._unconfirmed: list[int] = []
        self._last_sent = 0.0  # time.monotonic() of the last write

    def format(self, event: AuditEvent) -> str:
        body = cef(event) if self.settings.format == "cef" else json.dumps(event.to_json(), default=str)
        return rfc5424(event, body, self.hostname)

    async def queue_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Add the events' frames to the outbox, inside `conn`'s transaction."""
        if events:
            now = self.clock.now()
            await conn.execute(
                insert(syslog_outbox), [{"message": self.format(e), "created_at": now} for e in events]
            )

    def notify(self) -> None:
        """Rows were committed: wake the sender (never blocks, never fails)."""
        self._queued = True
        self._wake.set()

    async def pending(self) -> int:
        """How many events wait in the outbox to be sent (for metrics and tests); not those this
        sender wrote and waits for the receiver to confirm."""
        async with self.engine.connect() as conn:
            total = int((await conn.execute(select(func.count()).select_from(syslog_outbox))).scalar_one())
        return total - len(self._unconfirmed)

    @property
    def unconfirmed(self) -> int:
        """Rows written on the current connection and not yet confirmed by the receiver."""
        return len(self._unconfirmed)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, then what is left for a moment (the rest stays queued)."""
        failures = 0
        while not stop.is_set():
            self._wake.clear()
            try:
                sent = await self.deliver_due()
            except OSError as exc:  # refused, reset, timed out: the receiver is down or stuck
                failures += 1
                self._failing = True
                if failures == 1:
                    log.warning("syslog to %s failed (%s); events wait in the outbox", self.address, exc)
                await _wait(self.policy.delay(failures), stop)
                continue
            except Exception as exc:  # the database blinked: try again next round
                log.warning("syslog delivery round failed: %s", exc)
                await _wait(self.poll_seconds, stop)
                continue
            if failures:
                log.info("syslog to %s delivers again (after %d failed attempts)", self.address, failures)
                failures = 0
                self._failing = False
            if not sent:
                if self._unconfirmed and time.monotonic() - self._last_sent >= self.confirm_idle_seconds:
                    try:
                        await self.confirm()
                    except OSError as exc:
                        failures += 1
                        self._failing = True
                        if failures == 1:
                            log.warning("syslog to %s: %s; they are sent again", self.address, exc)
                        await _wait(self.policy.delay(failures), stop)
                        continue
                    continue
                wait = self.confirm_idle_seconds if self._unconfirmed else self.poll_seconds
                await _wait(min(wait, self.poll_seconds), stop, self._wake)
        await self.flush()

    async def flush(self, seconds: float = FLUSH_SECONDS) -> None:
        """Deliver what this process queued, for at most `seconds`, unless the receiver is known to
        be failing, and ask the receiver to confirm what it was sent; never raises."""
        if self._failing or not (self._queued or self._unconfirmed):
            return
        try:
            if self._queued:
                async with asyncio.timeout(seconds):
                    while await self.deliver_due():
                        pass
            if self._unconfirmed:
                await self.confirm()  # bounded by confirm_seconds
        except Exception as exc:
            self._failing = True
            log.warning("syslog to %s: events stay in the outbox for the next sender (%s)", self.address, exc)

    async def aclose(self) -> None:
        """Flush for a moment, then close the connection; what the receiver did not confirm stays
        in the outbox, released for the next sender."""
        await self.flush()
        self._transport.close()
        with contextlib.suppress(Exception):
            await self._release(self._unconfirmed)
        self._unconfirmed = []

    async def confirm(self) -> None:
        """Ask the receiver to confirm what this connection carried (see the module's docstring):
        confirmed rows leave the outbox; if it does not answer, they are released, to be sent
        again, and OSError says so."""
        ids, self._unconfirmed = self._unconfirmed, []
        if not ids:
            return
        if await self._transport.confirm(self.confirm_seconds):
            await self._delete(ids)
            return
        with contextlib.suppress(Exception):  # else the lease runs out
            await self._release(ids)
        raise OSError(
            f"the receiver did not confirm {len(ids)} events within {self.confirm_seconds:g} s: it "
            "accepts and does not read, or does not close at the end of a stream (then set "
            "[syslog] confirm_delivery = false)"
        )

    async def _settle(self) -> None:
        """If the connection has ended since the last write: what it carried is confirmed when the
        receiver closed it cleanly, else released to be sent again (before anything newer)."""
        clean = self._transport.ended()
        if clean is None or not self._unconfirmed:
            return
        ids, self._unconfirmed = self._unconfirmed, []
        if clean:
            await self._delete(ids)
        else:
            await self._release(ids)

    async def deliver_due(self) -> int:
        """Send the oldest batch and delete it; how many were sent. OSError when the receiver fails."""
        await self._settle()
        rows = await self._claim()
        if not rows:
            self._queued = False
            return 0
        ids = [row_id for row_id, _ in rows]
        try:
            await self._transport.send([message for _, message in rows])
        except Exception:
            ids += self._unconfirmed  # the connection is closed: none of it is confirmed now
            self._unconfirmed = []
            with contextlib.suppress(Exception):  # else the lease runs out
                await self._release(ids)
            raise
        self._last_sent = time.monotonic()
        if not self._transport.confirms:
            await self._delete(ids)
            return len(rows)
        self._unconfirmed += ids
        if len(self._unconfirmed) >= RETAIN_ROWS:
            await self.confirm()
        return len(rows)

    async def _delete(self, ids: list[int]) -> None:
        async with self.engine.begin() as conn:
            for start in range(0, len(ids), BATCH):
                await conn.execute(
                    delete(syslog_outbox).where(syslog_outbox.c.id.in_(ids[start : start + BATCH]))
                )

    async def _claim(self) -> list[tuple[int, str]]:
        """The oldest rows, unless another sender is delivering (then nothing: the order holds)."""
        c = syslog_outbox.c
        now = self.clock.now()
        async with self.engine.begin() as conn:  # on SQLite, BEGIN IMMEDIATE: one claimer at a time
            if conn.dialect.name == "postgresql":
                locked = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _SENDER_LOCK})
                if not locked.scalar_one():
                    return []
            # Another sender's live claim: it is delivering, this one waits (ours are ours).
            others = select(c.id).where(c.claimed_until > now)
            if self._unconfirmed:
                others = others.where(c.id.not_in(self._unconfirmed))
            if (await conn.execute(others.limit(1))).first():
                return []
            for start in range(0, len(self._unconfirmed), BATCH):  # ours: renewed while unconfirmed
                chunk = self._unconfirmed[start : start + BATCH]
                await conn.execute(
                    update(syslog_outbox).where(c.id.in_(chunk)).values(claimed_until=now + LEASE)
                )
            free = or_(c.claimed_until.is_(None), c.claimed_until <= now)
            rows = (await conn.execute(select(c.id, c.message).where(free).order_by(c.id).limit(BATCH))).all()
            if rows:
                claimed = update(syslog_outbox).where(c.id.in_([r.id for r in rows]))
                await conn.execute(claimed.values(claimed_until=now + LEASE))
        return [(int(r.id), str(r.message)) for r in rows]

    async def _release(self, ids: list[int]) -> None:
        async with self.engine.begin() as conn:
            for start in range(0, len(ids), BATCH):
                chunk = ids[start : start + BATCH]
                await conn.execute(
                    update(syslog_outbox).where(syslog_outbox.c.id.in_(chunk)).values(claimed_until=None)
                )


def _socket_settled(writer: asyncio.StreamWriter) -> bool:
    """No error pending on the socket and, where the system tells (Linux SIOCOUTQ), nothing written
    that the receiver has not acknowledged."""
    if writer.transport.get_write_buffer_size():
        return False
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            return False
        import fcntl
        import struct
        import termios

        unacknowledged = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        return bool(unacknowledged == 0)
    except (OSError, ImportError, AttributeError):  # closed already, or not on Linux: not known
        return False


async def _wait(seconds: float, *events: asyncio.Event) -> None:
    """Until `seconds` have passed or one of `events` is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
