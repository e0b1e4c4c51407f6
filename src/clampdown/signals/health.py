"""How Shared Signals are doing, for the settings page and GET /api/v1/ssf/health: each configured
receiver (what it accepted and refused, read from the audit trail), Clampdown's transmitter (its
metadata address, the kids it publishes, each stream's outbox) and the last SETs received and sent.
Read-only.

A stream's health, the first that holds:
  disabled  its status is disabled: it receives nothing;
  paused    its status is paused: its SETs wait in the outbox;
  failing   its newest delivery attempt failed (a push answered an error or was refused, a poll
            receiver refused the SET);
  backlog   a SET has waited undelivered (pending) longer than BACKLOG_SECONDS;
  ok        otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.audit.events import EventName
from clampdown.auth.principal import PermissionDenied, Principal, require_permission, require_unscoped
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import SsfReceiverSettings, SsfSettings, SsfTransmitterSettings
from clampdown.db.tables import audit_log, containment_accounts, ssf_outbox, ssf_streams
from clampdown.errors import ClampdownError
from clampdown.limits import MAX_ACCOUNT_ID, fit_key
from clampdown.permissions import SETTINGS_MANAGE
from clampdown.secevents import POLL, TransmitterKeys
from clampdown.services.runtime import Runtime
from clampdown.signals.jwks import configuration_url, well_known_url

WINDOW = timedelta(hours=24)  # the receivers' counts
BACKLOG_SECONDS = 300.0  # a SET pending longer than this makes its stream's health "backlog"
LAST_SHOWN = 20  # SETs received and sent listed
RECEIVED, REFUSED = EventName.SIGNAL_RECEIVED.value, EventName.SIGNAL_REFUSED.value
OK, BACKLOG, FAILING, PAUSED, DISABLED = "ok", "backlog", "failing", "paused", "disabled"
_UNDELIVERED = ("failed", "refused")  # push: failed; poll: refused by the receiver


@dataclass(frozen=True)
class ReceivedSignal:
    """One SET a receiver accepted or refused, as the audit trail has it."""

    at: datetime
    receiver: str
    outcome: str  # accepted or refused
    event_types: tuple[str, ...]
    subject: str | None  # the person's UPN, or the subject as the SET gave it
    resolved: bool | None  # accepted: whether the subject resolved to a person
    err: str | None  # refused: its RFC 8935 error code
    description: str | None
    jti: str | None
    issuer: str | None
    delivery: str | None  # push or poll


@dataclass(frozen=True)
class ReceiverHealth:
    """A configured receiver ([ssf.receivers.NAME]) and what it did over the last 24 hours."""

    name: str
    issuer: str
    delivery: str  # push, poll, or push and poll
    configuration_url: str
    accepted_24h: int
    refused_24h: int
    last_accepted: ReceivedSignal | None
    last_refused: ReceivedSignal | None


@dataclass(frozen=True)
class StreamHealth:
    """One stream of Clampdown's transmitter and its outbox."""

    stream_id: str
    owner: str
    description: str | None
    delivery: str  # push or poll
    endpoint_url: str | None
    status: str  # enabled, paused, disabled
    status_reason: str | None
    events_requested: tuple[str, ...]
    verified_at: datetime | None
    counts: dict[str, int]  # outbox rows by status
    last_delivered_at: datetime | None
    last_error: str | None
    oldest_pending_at: datetime | None
    oldest_pending_seconds: float | None
    health: str  # ok, backlog, failing, paused, disabled
    health_reason: str


@dataclass(frozen=True)
class TransmitterHealth:
    """Clampdown as a transmitter: where receivers find it, the keys it publishes, its streams."""

    issuer: str
    metadata_url: str
    kids: tuple[str, ...]  # the current signing key's first
    key_problem: str | None  # why the keys could not be read, when they could not
    streams: list[StreamHealth]


@dataclass(frozen=True)
class SentSignal:
    """One SET in Clampdown's outbox."""

    at: datetime
    stream_id: str
    event_types: tuple[str, ...]
    subject: str | None
    containment_id: int | None
    status: str
    attempts: int
    delivered_at: datetime | None
    last_error: str | None
    jti: str


@dataclass(frozen=True)
class SignalsHealth:
    """Everything the Shared Signals settings page shows."""

    generated_at: datetime
    receivers: list[ReceiverHealth]
    transmitter: TransmitterHealth | None
    received: list[ReceivedSignal] = field(default_factory=list)  # newest first
    sent: list[SentSignal] = field(default_factory=list)  # newest first


def _delivery(settings: SsfReceiverSettings) -> str:
    ways = [
        w for w, on in (("push", settings.bearer is not None), ("poll", settings.poll_url is not None)) if on
    ]
    return " and ".join(ways)


def _received(row: Any) -> ReceivedSignal:
    data = row.data if isinstance(row.data, dict) else {}
    events = data.get("events")
    accepted = row.event == RECEIVED

    def text(key: str) -> str | None:
        value = data.get(key)
        return str(value) if value is not None else None

    return ReceivedSignal(
        at=row.at,
        receiver=str(data.get("receiver") or row.actor.removeprefix("ssf:")),
        outcome="accepted" if accepted else "refused",
        event_types=tuple(str(e) for e in events) if isinstance(events, list) else (),
        subject=row.subject,
        resolved=bool(data.get("resolved")) if accepted else None,
        err=text("err"),
        description=text("description"),
        jti=text("jti"),
        issuer=text("issuer"),
        delivery=text("delivery"),
    )


_SIGNAL_COLUMNS = (
    audit_log.c.at,
    audit_log.c.actor,
    audit_log.c.event,
    audit_log.c.subject,
    audit_log.c.data,
)


async def _last_signal(conn: AsyncConnection, receiver: str, event: str) -> ReceivedSignal | None:
    query = (select(*_SIGNAL_COLUMNS)
             .where(audit_log.c.event == event, audit_log.c.actor == f"ssf:{receiver}")
             .order_by(audit_log.c.seq.desc()).limit(1))  # fmt: skip
    row = (await conn.execute(query)).first()
    return _received(row) if row is not None else None


async def _receivers(
    conn: AsyncConnection, receivers: dict[str, SsfReceiverSettings], now: datetime
) -> list[ReceiverHealth]:
    counted = await conn.execute(
        select(audit_log.c.actor, audit_log.c.event, func.count())
        .where(audit_log.c.event.in_([RECEIVED, REFUSED]), audit_log.c.at >= now - WINDOW)
        .group_by(audit_log.c.actor, audit_log.c.event)
    )
    counts = {(actor, event): int(n) for actor, event, n in counted}
    found = []
    for name, settings in sorted(receivers.items()):
        found.append(ReceiverHealth(
            name=name,
            issuer=settings.issuer,
            delivery=_delivery(settings),
            configuration_url=configuration_url(settings),
            accepted_24h=counts.get((f"ssf:{name}", RECEIVED), 0),
            refused_24h=counts.get((f"ssf:{name}", REFUSED), 0),
            last_accepted=await _last_signal(conn, name, RECEIVED),
            last_refused=await _last_signal(conn, name, REFUSED),
        ))  # fmt: skip
    return found


async def _received_lately(conn: AsyncConnection, limit: int) -> list[ReceivedSignal]:
    query = (select(*_SIGNAL_COLUMNS).where(audit_log.c.event.in_([RECEIVED, REFUSED]))
             .order_by(audit_log.c.seq.desc()).limit(limit))  # fmt: skip
    return [_received(row) for row in await conn.execute(query)]


def _health(stream: Any, newest_attempt: Any, pending_seconds: float | None) -> tuple[str, str]:
    if stream.status == DISABLED:
        return DISABLED, stream.status_reason or "the stream is disabled: it receives nothing"
    if stream.status == PAUSED:
        return PAUSED, stream.status_reason or "the stream is paused: its SETs wait in the outbox"
    if newest_attempt is not None and (newest_attempt.status in _UNDELIVERED or newest_attempt.last_error):
        refused = newest_attempt.status == "refused"
        return FAILING, "the receiver refused the last SET" if refused else "the last delivery failed"
    if pending_seconds is not None and pending_seconds > BACKLOG_SECONDS:
        return BACKLOG, f"a SET has waited {round(pending_seconds)} s undelivered"
    return OK, "delivering"


async def _stream(conn: AsyncConnection, stream: Any, now: datetime) -> StreamHealth:
    sid = stream.stream_id
    of_stream = ssf_outbox.c.stream_id == sid
    counts = {
        status: int(n)
        for status, n in await conn.execute(
            select(ssf_outbox.c.status, func.count()).where(of_stream).group_by(ssf_outbox.c.status)
        )
    }
    last_delivered = (
        await conn.execute(select(func.max(ssf_outbox.c.delivered_at)).where(of_stream))
    ).scalar()
    oldest_pending = (await conn.execute(
        select(func.min(ssf_outbox.c.created_at)).where(of_stream, ssf_outbox.c.status == "pending")
    )).scalar()  # fmt: skip
    # The newest SET an attempt was made for: delivered or refused, or pending after a failed try.
    newest_attempt = (await conn.execute(
        select(ssf_outbox.c.status, ssf_outbox.c.last_error)
        .where(of_stream, or_(ssf_outbox.c.status != "pending", ssf_outbox.c.attempts > 0))
        .order_by(ssf_outbox.c.id.desc()).limit(1)
    )).first()  # fmt: skip
    last_error = (await conn.execute(
        select(ssf_outbox.c.last_error).where(of_stream, ssf_outbox.c.last_error.is_not(None))
        .order_by(ssf_outbox.c.id.desc()).limit(1)
    )).scalar()  # fmt: skip
    pending_seconds = (now - oldest_pending).total_seconds() if oldest_pending is not None else None
    health, reason = _health(stream, newest_attempt, pending_seconds)
    return StreamHealth(
        stream_id=sid,
        owner=stream.owner,
        description=stream.description,
        delivery="poll" if stream.delivery_method == POLL else "push",
        endpoint_url=stream.endpoint_url,
        status=stream.status,
        status_reason=stream.status_reason,
        events_requested=tuple(stream.events_requested or ()),
        verified_at=stream.verified_at,
        counts=counts,
        last_delivered_at=last_delivered,
        last_error=last_error,
        oldest_pending_at=oldest_pending,
        oldest_pending_seconds=pending_seconds,
        health=health,
        health_reason=reason,
    )


def _keys(settings: SsfTransmitterSettings) -> tuple[tuple[str, ...], str | None]:
    try:
        keys = TransmitterKeys.load(settings.signing_key_file, settings.previous_key_files)
    except ClampdownError as exc:
        return (), exc.message
    return (keys.current.kid, *(k.kid for k in keys.previous)), None


async def _transmitter(
    conn: AsyncConnection, settings: SsfTransmitterSettings | None, now: datetime
) -> TransmitterHealth | None:
    rows = (await conn.execute(select(ssf_streams).order_by(ssf_streams.c.stream_id))).all()
    if settings is None and not rows:
        return None
    streams = [await _stream(conn, row, now) for row in rows]
    if settings is None:
        unset = "[ssf.transmitter] is not configured: these streams get no new SETs"
        return TransmitterHealth("", "", (), unset, streams)
    kids, problem = await asyncio.to_thread(_keys, settings)
    return TransmitterHealth(settings.issuer, well_known_url(settings.issuer), kids, problem, streams)


def _sent(row: Any) -> SentSignal:
    return SentSignal(
        at=row.created_at,
        stream_id=row.stream_id,
        event_types=tuple(row.event_types or ()),
        subject=row.subject,
        containment_id=row.containment_id,
        status=row.status,
        attempts=int(row.attempts or 0),
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        jti=row.jti,
    )


_SENT_COLUMNS = (
    ssf_outbox.c.created_at, ssf_outbox.c.stream_id, ssf_outbox.c.event_types, ssf_outbox.c.subject,
    ssf_outbox.c.containment_id, ssf_outbox.c.status, ssf_outbox.c.attempts, ssf_outbox.c.delivered_at,
    ssf_outbox.c.last_error, ssf_outbox.c.jti,
)  # fmt: skip


async def signals_health(
    engine: AsyncEngine, settings: SsfSettings, now: datetime, limit: int = LAST_SHOWN
) -> SignalsHealth:
    """The receivers, the transmitter and its streams, and the last `limit` SETs received and sent."""
    async with engine.connect() as conn:
        receivers = await _receivers(conn, settings.receivers, now)
        transmitter = await _transmitter(conn, settings.transmitter, now)
        received = await _received_lately(conn, limit)
        query = select(*_SENT_COLUMNS).order_by(ssf_outbox.c.id.desc()).limit(limit)
        sent = [_sent(row) for row in await conn.execute(query)]
    return SignalsHealth(now, receivers, transmitter, received, sent)


async def sent_about(
    engine: AsyncEngine, names: Iterable[str], account_ids: Iterable[str], limit: int = LAST_SHOWN
) -> list[SentSignal]:
    """The SETs Clampdown sent about a person, newest first: those whose subject is one of their
    `names` (sign-in names, addresses), or that announce a containment of one of their accounts."""
    lowered = sorted({n.strip().lower() for n in names if n and n.strip()})
    ids = sorted({fit_key(a, MAX_ACCOUNT_ID) for a in account_ids if a})  # as containments keep them
    if not lowered and not ids:
        return []
    contained = select(containment_accounts.c.containment_id).where(
        containment_accounts.c.account_id.in_(ids)
    )
    about = or_(func.lower(ssf_outbox.c.subject).in_(lowered), ssf_outbox.c.containment_id.in_(contained))
    query = select(*_SENT_COLUMNS).where(about).order_by(ssf_outbox.c.id.desc()).limit(limit)
    async with engine.connect() as conn:
        return [_sent(row) for row in await conn.execute(query)]


class SignalsHealthService:
    """What the faces call: the health for settings:manage, a person's sent SETs for the user page."""

    def __init__(self, rt: Runtime, clock: Clock = SYSTEM_CLOCK) -> None:
        self.rt = rt
        self.clock = clock

    async def _allow(self, principal: Principal, permission: str, attempted: str, what: str) -> None:
        try:
            require_permission(principal, permission, what)
            require_unscoped(principal, what)  # signals span every directory
        except PermissionDenied as exc:
            await self.rt.actions.record_denial(principal, attempted, None, exc.missing)
            raise

    async def health(self, principal: Principal, limit: int = LAST_SHOWN) -> SignalsHealth:
        """The Shared Signals health (settings:manage, access to every directory)."""
        await self._allow(principal, SETTINGS_MANAGE, "ssf.health", "see the Shared Signals health")
        return await signals_health(self.rt.engine, self.rt.settings.ssf, self.clock.now(), limit)

    async def sent_about(
        self, principal: Principal, permission: str, names: Sequence[str], account_ids: Sequence[str]
    ) -> list[SentSignal]:
        """The SETs sent about a person (whose page the principal sees with `permission`)."""
        await self._allow(principal, permission, "ssf.sent", "see the Shared Signals sent about a person")
        return await sent_about(self.rt.engine, names, account_ids)
