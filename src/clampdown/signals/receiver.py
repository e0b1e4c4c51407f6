"""Push delivery (RFC 8935) of Security Event Tokens from the configured transmitters.

Each SET is authenticated (the bearer token of its stream), verified (signals/tokens.py), checked
for replay, its subject resolved to a person (signals/resolution.py), and stored as rows of the
hunting table SecuritySignals, where detection rules find it. Acceptance and every refusal are
audited (signal.received, signal.refused with the RFC 8935 error code). Nothing is acted on here:
a rule over SecuritySignals does that, through the policy gate like any other.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.events import EventName, signal_event
from clampdown.audit.recorder import EventRecorder
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import SsfReceiverSettings
from clampdown.connectors.base import Connector
from clampdown.errors import InvalidInput, NotFound, TransientError
from clampdown.hunting.schema import SECURITY_SIGNALS
from clampdown.hunting.service import HuntingService
from clampdown.hunting.store import Batch, EventStore, Row
from clampdown.services.runtime import Runtime
from clampdown.signals import replay
from clampdown.signals.jwks import JwksCache
from clampdown.signals.resolution import Resolution, resolve_subject, uninterpreted_critical
from clampdown.signals.subjects import INVALID_REQUEST, refused
from clampdown.signals.tokens import (
    ACCESS_DENIED,
    AUTHENTICATION_FAILED,
    SetVerifier,
    VerifiedSet,
    unverified_claims,
)

CONTENT_TYPE = "application/secevent+jwt"
MAX_SET_BYTES = 64 * 1024
_SHOWN = 256  # characters of an unverified claim kept in the audit trail


@dataclass(frozen=True)
class Accepted:
    """A SET taken in: its jti, its events' types and whom its subject names."""

    receiver: str
    jti: str
    event_types: tuple[str, ...]
    resolution: Resolution


def _shown(value: Any) -> str | None:
    return value[:_SHOWN] if isinstance(value, str) else None


def signal_rows(receiver: str, verified: VerifiedSet, resolution: Resolution) -> list[Row]:
    """The SecuritySignals rows of a SET: one per event."""
    user = verified.subject.user
    if user is not None and user.aliases:
        members: dict[str, str] = {}
        for alias in user.aliases:
            members = {**alias.members, **members}
    else:
        members = dict(user.members) if user is not None else {}
    several = len(verified.events) > 1
    rows = []
    for n, event in enumerate(verified.events):
        rows.append({
            "Timestamp": event.occurred_at or verified.issued_at,
            "Transmitter": receiver,
            "Issuer": verified.issuer,
            "EventType": event.type,
            "EventName": event.name,
            "SubjectFormat": verified.subject.format,
            "SubjectEmail": members.get("email"),
            "SubjectIssuer": members.get("iss"),
            "SubjectSub": members.get("sub"),
            "SubjectId": members.get("id"),
            "SubjectPhone": members.get("phone_number"),
            "Resolved": resolution.resolved,
            "ResolutionNote": resolution.note,
            "AccountUpn": resolution.upn,
            "AccountObjectIds": ",".join(resolution.account_ids) or None,
            "Txn": verified.txn,
            "Source": receiver,
            "ReportId": f"{verified.jti}#{n + 1}" if several else verified.jti,
            "AdditionalFields": verified.claims,
            "Directory": None,
        })  # fmt: skip
    return rows


class SignalReceivers:
    """The receivers of [ssf.receivers]: what the push endpoint calls."""

    def __init__(
        self,
        receivers: Mapping[str, SsfReceiverSettings],
        engine: AsyncEngine,
        recorder: EventRecorder,
        connectors: dict[str, Connector],
        events: EventStore,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.receivers = dict(receivers)
        self.engine = engine
        self.recorder = recorder
        self.connectors = connectors
        self.events = events
        self.clock = clock
        self._verifiers: dict[str, SetVerifier] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}

    @classmethod
    def from_runtime(cls, rt: Runtime, events: EventStore) -> SignalReceivers:
        """The configured receivers over the runtime's database, directories and audit trail."""
        recorder = rt.store.recorder or EventRecorder(rt.settings.webhooks)
        return cls(rt.settings.ssf.receivers, rt.engine, recorder, rt.connectors, events)

    def client(self, name: str) -> httpx.AsyncClient:
        """The HTTP client to one receiver's transmitter (its keys, its poll endpoint)."""
        if name not in self._clients:
            settings = self.receivers[name]
            self._clients[name] = httpx.AsyncClient(verify=settings.ca_file or True, follow_redirects=False)
        return self._clients[name]

    def verifier(self, name: str) -> SetVerifier:
        """The verifier of one receiver, with its own JWKS cache."""
        if name not in self._verifiers:
            settings = self.receivers[name]
            self._verifiers[name] = SetVerifier(settings, JwksCache(settings, self.client(name)))
        return self._verifiers[name]

    async def aclose(self) -> None:
        for http in self._clients.values():
            await http.aclose()

    async def _audit(self, name: EventName, receiver: str, subject: str | None, **data: Any) -> None:
        event = signal_event(name, self.clock.now(), receiver, subject, **data)
        async with self.engine.begin() as conn:
            await self.recorder.record_in(conn, [event])
        self.recorder.after_commit([event])

    def _authenticate(self, name: str, authorization: str | None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise InvalidInput(
                "no bearer token: the transmitter authenticates with the stream's bearer token",
                code=AUTHENTICATION_FAILED,
            )
        matches = {
            other: s.bearer is not None
            and hmac.compare_digest(given.encode(), s.bearer.get_secret_value().encode())
            for other, s in self.receivers.items()
        }
        if matches.get(name):
            return
        if any(matches.values()):
            raise InvalidInput(f"the bearer token is another stream's: it may not deliver to {name}",
                               code=ACCESS_DENIED)  # fmt: skip
        raise InvalidInput("the bearer token is not this stream's", code=AUTHENTICATION_FAILED)

    async def receive(
        self,
        name: str,
        authorization: str | None,
        content_type: str | None,
        body: bytes,
        source: str | None = None,
    ) -> Accepted:
        """Take in one pushed SET; InvalidInput whose code is the RFC 8935 error when it is refused,
        NotFound when no receiver has this name. Either way it is audited."""
        if name not in self.receivers:
            await self._audit(EventName.SIGNAL_REFUSED, name, None, err=INVALID_REQUEST, source=source,
                              description=f"no receiver {name!r} is configured")  # fmt: skip
            raise NotFound(f"no Shared Signals receiver {name!r} is configured ([ssf.receivers.NAME])")
        try:
            self._authenticate(name, authorization)
            media = (content_type or "").split(";", 1)[0].strip().lower()
            if media != CONTENT_TYPE:
                raise refused(f"Content-Type {media or 'none'!r}: a pushed SET is {CONTENT_TYPE} (RFC 8935)")
            if len(body) > MAX_SET_BYTES:
                raise refused(f"the SET is larger than {MAX_SET_BYTES} bytes, the most accepted")
            try:
                token = body.decode("ascii").strip()
            except UnicodeDecodeError:
                raise refused("the body is not a JWT in compact serialization (ASCII)") from None
        except InvalidInput as exc:
            await self._refused(name, exc, {}, source=source, delivery="push")
            raise
        return await self.take(name, token, source=source, delivery="push")

    async def take(
        self, name: str, token: str, *, source: str | None = None, delivery: str = "poll"
    ) -> Accepted:
        """Verify and take in one SET of receiver `name`, pushed or polled; InvalidInput whose code is
        the RFC 8935 error when it is refused. Either way it is audited."""
        stated = unverified_claims(token) or {}
        try:
            return await self._take(name, token, delivery)
        except InvalidInput as exc:
            await self._refused(name, exc, stated, source=source, delivery=delivery)
            raise
        except TransientError as exc:  # the transmitter's keys cannot be fetched: it sends it again
            await self._audit(
                EventName.SIGNAL_DEFERRED, name, None, code=exc.code, description=exc.message, source=source,
                delivery=delivery, jti=_shown(stated.get("jti")), issuer=_shown(stated.get("iss")),
            )  # fmt: skip
            raise

    async def _refused(
        self, name: str, exc: InvalidInput, stated: dict[str, Any], *, source: str | None, delivery: str
    ) -> None:
        await self._audit(
            EventName.SIGNAL_REFUSED, name, None, err=exc.code, description=exc.message, source=source,
            delivery=delivery, jti=_shown(stated.get("jti")), issuer=_shown(stated.get("iss")),
        )  # fmt: skip

    async def _take(self, name: str, token: str, delivery: str) -> Accepted:
        settings = self.receivers[name]
        now = self.clock.now()
        verified = await self.verifier(name).verify(token, now)
        if await replay.seen(self.engine, verified.issuer, verified.jti):
            raise refused(f"jti {verified.jti!r} was received before: a replayed SET is refused")
        critical = self.verifier(name).jwks.critical_members
        resolution = uninterpreted_critical(verified.subject, critical) or await resolve_subject(
            self.connectors, verified.subject, settings
        )
        rows = signal_rows(name, verified, resolution)
        # Stored before the jti is: a failure in between makes the transmitter retry, and the row
        # is not stored twice (ReportId is the jti).
        await asyncio.to_thread(self.events.append, Batch({SECURITY_SIGNALS.name: rows}, {}))
        types = tuple(e.type for e in verified.events)
        event = signal_event(
            EventName.SIGNAL_RECEIVED, now, name, resolution.upn or verified.subject.describe(),
            jti=verified.jti, issuer=verified.issuer, events=list(types), txn=verified.txn,
            subject_id=verified.subject.describe(), resolved=resolution.resolved, resolution=resolution.note,
            accounts=list(resolution.account_ids), delivery=delivery,
        )  # fmt: skip
        async with self.engine.begin() as conn:
            if not await replay.remember_in(
                conn, verified.issuer, verified.jti, name, verified.issued_at, now
            ):
                raise refused(f"jti {verified.jti!r} was received before: a replayed SET is refused")
            await replay.prune_in(conn, now - timedelta(seconds=settings.iat_past_seconds))
            await self.recorder.record_in(conn, [event])
        self.recorder.after_commit([event])
        return Accepted(name, verified.jti, types, resolution)


def receivers_for(rt: Runtime, state: Any) -> SignalReceivers:
    """The app's receivers (kept in `state.signals`), over the app's hunting event store."""
    found: SignalReceivers | None = getattr(state, "signals", None)
    if found is None:
        hunting: HuntingService | None = getattr(state, "hunting", None)
        if hunting is None:
            hunting = HuntingService.from_runtime(rt, open_now=False)
            state.hunting = hunting
        found = SignalReceivers.from_runtime(rt, hunting.store)
        state.signals = found
    return found
