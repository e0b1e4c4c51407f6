"""Shared Signals out: signed SETs committed to the outbox (`ssf_outbox`) in the transaction of
their cause, one row per stream that is to receive them.

A stream receives an event when it asked for that event type (verification and stream-updated
always), it is not disabled (a paused stream's SETs wait), and the subject is one of its subjects:
every subject unless removed when the transmitter's default is ALL, only the added ones when NONE.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import ColumnElement, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName
from clampdown.audit.outbox import DELIVERED, Attempt, OutboxSender, count_by_status, retry_after
from clampdown.catalog import all_actions
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import SsfTransmitterSettings
from clampdown.db.tables import (
    actions,
    containments,
    ssf_announcements,
    ssf_outbox,
    ssf_stream_subjects,
    ssf_streams,
)
from clampdown.model import ActionSource, ActionStatus, ContainmentState, StepRole
from clampdown.retry import RetryPolicy
from clampdown.secevents import (
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    CREDENTIAL_CHANGE,
    PUSH,
    SESSION_REVOKED,
    STREAM_EVENTS,
    TransmitterKeys,
)

ENABLED = "enabled"
PAUSED = "paused"
DISABLED = "disabled"
STREAM_STATUSES = (ENABLED, PAUSED, DISABLED)


def subject_key(sub_id: dict[str, Any]) -> str | None:
    """The key a subject identifier is filed under in `ssf_stream_subjects`, or None for a format
    Clampdown cannot match a person by: `email:<address>`, `iss_sub:<iss> <sub>`, `opaque:<id>`
    (lower case but for the opaque id)."""
    fmt = sub_id.get("format")
    if fmt == "email" and isinstance(sub_id.get("email"), str):
        return "email:" + str(sub_id["email"]).strip().lower()
    if fmt == "iss_sub" and isinstance(sub_id.get("iss"), str) and isinstance(sub_id.get("sub"), str):
        return f"iss_sub:{str(sub_id['iss']).rstrip('/')} {str(sub_id['sub']).strip().lower()}"
    if fmt == "opaque" and isinstance(sub_id.get("id"), str):
        return "opaque:" + str(sub_id["id"])
    return None


def person_keys(issuer: str, names: Iterable[str]) -> set[str]:
    """The subject keys a person is known by: each sign-in name or address of their accounts as an
    email, and as an iss_sub of Clampdown's issuer."""
    keys = set()
    for name in names:
        value = name.strip().lower()
        if "@" in value:
            keys.add("email:" + value)
        if value:
            keys.add(f"iss_sub:{issuer.rstrip('/')} {value}")
    return keys


@dataclass(frozen=True)
class Transmission:
    """What one SET says: its events (type URI -> payload) and its subject."""

    events: dict[str, dict[str, Any]]
    sub_id: dict[str, Any]
    subject: str | None = None  # for people reading the outbox: the person's UPN, the stream id
    containment_id: int | None = None
    txn: str | None = None


async def receiving_streams_in(
    conn: AsyncConnection,
    settings: SsfTransmitterSettings,
    event_type: str,
    keys: set[str],
    stream_ids: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The streams (rows of ssf_streams) to receive an event of `event_type` about a subject known by
    `keys`: asked for it, not disabled, the subject theirs. `stream_ids`: only among these."""
    query = select(ssf_streams).where(ssf_streams.c.status != DISABLED)
    if stream_ids is not None:
        query = query.where(ssf_streams.c.stream_id.in_(list(stream_ids)))
    streams = [dict(r) for r in (await conn.execute(query)).mappings()]
    if event_type in STREAM_EVENTS:
        return streams
    streams = [s for s in streams if event_type in (s["events_requested"] or [])]
    if not streams:
        return streams
    listed: dict[str, dict[str, bool]] = {}
    if keys:
        rows = await conn.execute(
            select(ssf_stream_subjects.c.stream_id, ssf_stream_subjects.c.subject_key,
                   ssf_stream_subjects.c.included)
            .where(ssf_stream_subjects.c.stream_id.in_([s["stream_id"] for s in streams]))
            .where(ssf_stream_subjects.c.subject_key.in_(sorted(keys)))
        )  # fmt: skip
        for stream_id, key, included in rows:
            listed.setdefault(stream_id, {})[key] = bool(included)
    chosen = []
    for stream in streams:
        marks = listed.get(stream["stream_id"], {})
        if settings.default_subjects == "ALL":
            if not any(included is False for included in marks.values()):
                chosen.append(stream)
        elif any(marks.values()):
            chosen.append(stream)
    return chosen


async def enqueue_in(
    conn: AsyncConnection,
    settings: SsfTransmitterSettings,
    keys: TransmitterKeys,
    streams: Sequence[dict[str, Any]],
    what: Transmission,
    now: datetime,
) -> list[str]:
    """Sign one SET per stream (its own audience and jti) and queue it, inside `conn`'s transaction;
    returns the jtis. A stream receives only the events it asked for (and the stream events)."""
    rows, jtis = [], []
    for stream in streams:
        wanted = set(stream["events_requested"] or []) | set(STREAM_EVENTS)
        events = {t: p for t, p in what.events.items() if t in wanted}
        if not events:
            continue
        jti, token = keys.sign(settings.issuer, stream["audience"], events, what.sub_id, now, what.txn)
        jtis.append(jti)
        rows.append({
            "stream_id": stream["stream_id"],
            "jti": jti,
            "event_types": sorted(events),
            "subject": (what.subject or "")[:1024] or None,
            "containment_id": what.containment_id,
            "token": token,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        })  # fmt: skip
    if rows:
        await conn.execute(insert(ssf_outbox), rows)
    return jtis


# -- Containments announced ----------------------------------------------------------------------
#
# The recorder's SSF output. An action's outcome (completed, failed, cancelled, its approval rejected
# or expired) may end a phase of its containment; the phase is announced in the transaction of the
# outcome, so the SETs commit with it or not at all:
#
# - "contained": the containment is active and every step has ended. Each event type its COMPLETED
#   steps announce (account-disabled, session-revoked, credential-change; a failed step announces
#   nothing) goes out, all in ONE SET per stream: SSF 1.0 (section 4) lets a SET carry several events
#   about one subject in one transaction, and a stream that asked for fewer types gets only those
#   (enqueue_in). A receiver that wants one event per SET still reads each event on its own.
# - "released": the containment was released (by a person: its release steps have all ended) or has
#   expired (its timed releases have all ended), and a completed one announces account-enabled.
#
# Each phase is announced at most once: its row in ssf_announcements is inserted with ON CONFLICT DO
# NOTHING before any SET is queued, and only the transaction that inserted it queues them. Two workers
# ending a containment's last two steps at once do not both miss the end either: the recorder appends
# to the audit chain first, and the append holds the chain's lock to the commit (PostgreSQL) or the
# database's write lock (SQLite), so the later transaction reads the earlier one's outcome.

CONTAINED = "contained"
RELEASED = "released"
_CONTAINED_EVENTS = (ACCOUNT_DISABLED, SESSION_REVOKED, CREDENTIAL_CHANGE)
_RELEASED_EVENTS = (ACCOUNT_ENABLED,)
_ENDINGS = frozenset(
    {EventName.ACTION_COMPLETED, EventName.ACTION_FAILED, EventName.ACTION_CANCELLED,
     EventName.APPROVAL_REJECTED, EventName.APPROVAL_EXPIRED}
)  # fmt: skip
_ANNOUNCES = {d.id: d.announces for d in all_actions() if d.announces}
# Steps born of automation (a detection rule, the containment watch) were not started by a person:
# CAEP's initiating_entity says "policy" when every step was, "admin" otherwise.
_AUTOMATIC = frozenset({ActionSource.RULE.value, ActionSource.WATCH.value})
# Where an account keeps an address its person signs in with (ad and entra: the UPN; okta: the login
# and email), in the order a subject's address is chosen.
_ADDRESSES = ("userPrincipalName", "email", "mail", "login")
_REASON_CHARS = 1024


def _phase_insert(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def subject_of(person: str, accounts: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """A contained person's subject identifier (email format, with their UPN or address; opaque, with
    the containment's reference to them, when they have none) and every name they are known by."""
    names = [person]
    for account in accounts:
        attributes = account.get("attributes") or {}
        names += [str(attributes[k]) for k in _ADDRESSES if attributes.get(k)]
        names.append(str(account.get("name") or ""))
    address = next((n.strip() for n in names if "@" in n and " " not in n.strip()), None)
    if address is not None:
        return {"format": "email", "email": address}, names
    return {"format": "opaque", "id": person}, names


class ContainmentAnnouncer:
    """The EventRecorder output that announces containments to the streams (see above)."""

    def __init__(
        self,
        settings: SsfTransmitterSettings,
        keys: TransmitterKeys,
        clock: Clock = SYSTEM_CLOCK,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.clock = clock
        self.wake = wake  # the push sender's notify, woken once SETs are committed
        self._queued = False

    async def queue_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Announce the phases the events' actions ended, inside `conn`'s transaction."""
        ended_ids = (e.data.get("action_id") for e in events if e.event in _ENDINGS)
        ids = sorted({i for i in ended_ids if isinstance(i, int)})
        if not ids:
            return
        a = actions.c
        rows = await conn.execute(
            select(a.containment_id, a.containment_role).where(a.id.in_(ids), a.containment_id.is_not(None))
        )
        ended: dict[int, set[str]] = {}
        for containment_id, role in rows:
            ended.setdefault(int(containment_id), set()).add(str(role))
        for containment_id in sorted(ended):  # several steps of one containment: it is read once
            await self._announce_in(conn, containment_id, ended[containment_id])

    def notify(self) -> None:
        if self._queued and self.wake is not None:
            self._queued = False
            self.wake()

    async def _announce_in(self, conn: AsyncConnection, containment_id: int, roles: set[str]) -> None:
        found = await conn.execute(select(containments).where(containments.c.id == containment_id))
        containment = found.mappings().one_or_none()
        if containment is None:
            return
        a = actions.c
        members = (
            await conn.execute(
                select(a.type, a.status, a.containment_role, a.source, a.finished_at)
                .where(a.containment_id == containment_id)
            )
        ).all()  # fmt: skip
        state = containment["state"]
        kinds: tuple[str, ...]
        ending: tuple[StepRole, ...]
        if StepRole.STEP in roles and state == ContainmentState.ACTIVE:
            phase, kinds, ending = CONTAINED, _CONTAINED_EVENTS, (StepRole.STEP,)
        elif (state == ContainmentState.RELEASED and StepRole.RELEASE in roles) or (
            state == ContainmentState.EXPIRED and roles & {StepRole.RELEASE, StepRole.TIMER}
        ):
            # A person's release ends with its release steps: the timers it cancels end in its own
            # transaction before those steps are queued, so they cannot end the phase.
            phase, kinds, ending = RELEASED, _RELEASED_EVENTS, (StepRole.RELEASE, StepRole.TIMER)
        else:
            return
        ones = [m for m in members if m.containment_role in ending]
        if not ones or not all(ActionStatus(m.status).is_final for m in ones):
            return
        done = [m for m in ones if m.status == ActionStatus.COMPLETED and _ANNOUNCES.get(m.type) in kinds]
        if not done:
            return  # nothing to announce yet: a step the watch applies again may complete later
        now = self.clock.now()
        claimed = await conn.execute(
            _phase_insert(conn.dialect.name)(ssf_announcements)
            .values(containment_id=containment_id, phase=phase, announced_at=now)
            .on_conflict_do_nothing()
        )
        if claimed.rowcount == 0:
            return  # announced already
        sub_id, names = subject_of(containment["person"], containment["accounts"] or [])
        keys = person_keys(self.settings.issuer, names)
        policy = all(m.source in _AUTOMATIC for m in ones)
        reason = containment["reason"] if phase == CONTAINED else containment["end_reason"] or ""
        payloads: dict[str, dict[str, Any]] = {}
        for kind in kinds:
            times = [m.finished_at or now for m in done if _ANNOUNCES[m.type] == kind]
            if times:
                payloads[kind] = _payload(kind, max(times), sub_id, policy, reason)
        streams: dict[str, dict[str, Any]] = {}
        for kind in payloads:
            for stream in await receiving_streams_in(conn, self.settings, kind, keys):
                streams[stream["stream_id"]] = stream
        if not streams:
            return
        suffix = "" if phase == CONTAINED else "-released"
        what = Transmission(
            payloads, sub_id, subject=sub_id.get("email") or containment["person"],
            containment_id=containment_id, txn=f"containment-{containment_id}{suffix}",
        )  # fmt: skip
        chosen = sorted(streams.values(), key=_stream_id)
        if await enqueue_in(conn, self.settings, self.keys, chosen, what, now):
            self._queued = True


def _stream_id(stream: dict[str, Any]) -> str:
    return str(stream["stream_id"])


def _payload(kind: str, at: datetime, sub_id: dict[str, Any], policy: bool, reason: str) -> dict[str, Any]:
    """One event's claims. Each carries the subject too, as {"user": <sub_id>}: Okta's receiver
    documents its CAEP and RISC events that way (CaepSessionRevokedEvent.subject is required there),
    so a receiver that reads the subject only from the event finds it."""
    claims: dict[str, Any] = {"subject": {"user": dict(sub_id)}, "event_timestamp": int(at.timestamp())}
    if kind == ACCOUNT_DISABLED:
        claims["reason"] = "hijacking"  # RISC 1.0: disabled because it was taken over
    if kind in (SESSION_REVOKED, CREDENTIAL_CHANGE):
        claims["initiating_entity"] = "policy" if policy else "admin"
        if reason:
            claims["reason_admin"] = {"en": reason[:_REASON_CHARS]}
    if kind == CREDENTIAL_CHANGE:  # a forced reset, an expired password: the one in use is revoked
        claims.update(credential_type="password", change_type="revoke")
    return claims


# -- Push delivery (RFC 8935) --------------------------------------------------------------------
#
# The SETs of push streams are POSTed to the stream's endpoint. Answers:
# - 2xx: delivered (RFC 8935 section 2.2 says 202; a receiver answering 200 or 204 took it too);
# - 400 with {"err", "description"} (section 2.3): the receiver refused this SET; sending it again
#   cannot change that, so it fails at once, its err and description kept in last_error. But the
#   codes authentication_failed and access_denied, like HTTP 401 and 403, refuse the credential, not
#   the SET: those are retried with the rest, so that once an operator corrects the stream's
#   authorization header the SETs still arrive (within the retry bound; each failure says why);
# - 408, 429, 5xx, no answer: retried with the one retry policy, the receiver's Retry-After first,
#   up to PUSH_POLICY's attempts, then failed;
# - any other answer (a 404, a redirect): failed at once, the answer kept.
# A paused stream's SETs wait; a disabled stream's pending SETs are dropped (failed, SSF 1.0 section
# 8.1.2: a disabled stream's events are not held); a deleted stream's go with it (ON DELETE CASCADE).

PUSH_POLICY = RetryPolicy(max_attempts=12, base_seconds=2.0, max_seconds=900.0)
SECEVENT_JWT = "application/secevent+jwt"
_CREDENTIAL_REFUSED = frozenset({"authentication_failed", "access_denied"})
_SHOWN_CHARS = 500


async def outbox_by_status(engine: AsyncEngine) -> list[tuple[str, int]]:
    """(status, how many) over the SSF outbox, for metrics."""
    return await count_by_status(engine, ssf_outbox)


def answer_of(response: httpx.Response, now: datetime) -> Attempt:
    """What a push receiver's answer means for the SET (see above)."""
    code = response.status_code
    if 200 <= code < 300:
        return DELIVERED
    if code == 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("err"), str):
            err = body["err"][:64]
            described = f"{err}: {str(body.get('description') or '')[:_SHOWN_CHARS]}"
            if err in _CREDENTIAL_REFUSED:
                return Attempt(f"the receiver refused the stream's credential ({described})")
            return Attempt(f"the receiver refused the SET ({described})", final=True)
        return Attempt(f"the receiver answered 400 without an error code: {response.text[:_SHOWN_CHARS]}",
                       final=True)  # fmt: skip
    if code in (401, 403):
        return Attempt(f"the receiver answered {code}: check the stream's authorization header")
    if code in (408, 429) or code >= 500:
        return Attempt(f"the receiver answered {code}", retry_after=retry_after(response, now))
    return Attempt(f"the receiver answered {code}", final=True)


class SsfPusher(OutboxSender):
    """Delivers the SETs of enabled push streams; any number may run against one database."""

    table = ssf_outbox
    name = "ssf push"

    def __init__(
        self,
        engine: AsyncEngine,
        settings: SsfTransmitterSettings,
        clock: Clock = SYSTEM_CLOCK,
        policy: RetryPolicy = PUSH_POLICY,
    ) -> None:
        super().__init__(engine, policy, clock)
        self.settings = settings
        self._client: httpx.AsyncClient | None = None
        self._streams: dict[str, dict[str, Any]] = {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            verify = self.settings.ca_file or True  # TLS always verified; ca_file for a private CA
            self._client = httpx.AsyncClient(verify=verify, timeout=10, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _due(self) -> list[ColumnElement[bool]]:
        s = ssf_streams.c
        pushed = select(s.stream_id).where(s.delivery_method == PUSH, s.status == ENABLED)
        return [ssf_outbox.c.stream_id.in_(pushed)]

    async def _sweep(self, conn: AsyncConnection, now: datetime) -> None:
        s, o = ssf_streams.c, ssf_outbox.c
        disabled = select(s.stream_id).where(s.delivery_method == PUSH, s.status == DISABLED)
        await conn.execute(
            update(ssf_outbox)
            .where(o.status == "pending", o.stream_id.in_(disabled))
            .values(status="failed", last_error="not sent: the stream was disabled (its events are not held)")
        )

    async def _prepare(self, claimed: list[dict[str, Any]]) -> None:
        s = ssf_streams.c
        ids = sorted({row["stream_id"] for row in claimed})
        query = select(s.stream_id, s.status, s.endpoint_url, s.authorization_header)
        query = query.where(s.stream_id.in_(ids))
        async with self.engine.connect() as conn:
            self._streams = {r.stream_id: r._asdict() for r in await conn.execute(query)}

    async def _deliver(self, row: dict[str, Any]) -> Attempt:
        stream = self._streams.get(row["stream_id"])
        if stream is None or stream["status"] != ENABLED or not stream["endpoint_url"]:
            return Attempt("the stream is not enabled now: the SET waits", retry_after=1.0)
        headers = {"Content-Type": SECEVENT_JWT, "Accept": "application/json"}
        if stream["authorization_header"]:
            headers["Authorization"] = stream["authorization_header"]
        try:
            response = await self._http().post(stream["endpoint_url"], content=row["token"], headers=headers)
        except httpx.HTTPError as exc:
            return Attempt(f"{type(exc).__name__}: {exc}"[:_SHOWN_CHARS])
        return answer_of(response, self.clock.now())
