"""Clampdown as a Shared Signals transmitter (SSF 1.0): its metadata (section 7) and keys, and the
streams receivers manage (section 8.1): create, read, update, replace, delete, status, subjects,
verification. What the API's SSF endpoints call; the outbox itself is audit/ssf_out.py's.

A receiver is an API user holding `signals:streams` (its token is its credential) whose access
covers every directory (a stream carries events about anyone). It sees and changes only the
streams it created: another's, or a declared one ([ssf.transmitter.streams.NAME], owner
"config:NAME"), is not found. Every change is audited in its own transaction; a status change
queues a stream-updated SET to the stream, a verification request a verification SET.

A disabled stream holds nothing (SSF 1.0 section 8.1.2): disabling it drops its pending SETs, and
no stream-updated is queued then (the receiver reads the status endpoint). A paused one keeps them.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName, ssf_stream_event
from clampdown.audit.recorder import EventRecorder
from clampdown.audit.ssf_out import DISABLED, ENABLED, STREAM_STATUSES, Transmission, enqueue_in
from clampdown.auth.principal import PermissionDenied, Principal, require_permission, require_unscoped
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import SsfTransmitterSettings
from clampdown.db.tables import ssf_outbox, ssf_stream_subjects, ssf_streams
from clampdown.errors import InvalidInput, NotFound, TooManyAttempts
from clampdown.limits import (
    MAX_SSF_DESCRIPTION,
    MAX_SSF_STATE,
    MAX_SSF_STREAM_ID,
    MAX_SSF_STREAMS_PER_OWNER,
    MAX_SSF_SUBJECTS_PER_STREAM,
    clean_text,
    optional_text,
)
from clampdown.permissions import SETTINGS_MANAGE, SIGNALS_STREAMS
from clampdown.secevents import (
    DELIVERY_METHODS,
    STREAM_UPDATED,
    VERIFICATION,
    TransmitterKeys,
)
from clampdown.services.runtime import Runtime
from clampdown.signals.stream_config import (
    CONFIG_OWNER,
    Stream,
    StreamRequest,
    api_url,
    check_audience,
    check_delivery,
    check_description,
    check_events,
    check_stated,
    check_subject,
    default_audience,
)

DenialRecorder = Callable[[Principal, str, str | None, str], Awaitable[None]]
DROPPED = "failed"  # the status of a SET dropped when its stream was disabled


async def _no_denial_record(principal: Principal, attempted: str, target: str | None, missing: str) -> None:
    return None


def stream_sub_id(stream_id: str) -> dict[str, str]:
    """The subject of a stream's own events (verification, stream-updated): SSF 1.0 section 8.1.4."""
    return {"format": "opaque", "id": stream_id}


class SignalStreams:
    """The transmitter's streams over the database, its settings and its signing keys."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: SsfTransmitterSettings,
        keys: TransmitterKeys,
        recorder: EventRecorder,
        record_denial: DenialRecorder = _no_denial_record,
        clock: Clock = SYSTEM_CLOCK,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.wake = wake  # the push sender, told when a SET was queued
        self.settings = settings
        self.keys = keys
        self.recorder = recorder
        self.record_denial = record_denial
        self.clock = clock

    @classmethod
    def from_runtime(cls, rt: Runtime) -> SignalStreams:
        """The configured transmitter; NotFound when [ssf.transmitter] is not configured, ConfigError
        when its keys cannot be read."""
        settings = rt.settings.ssf.transmitter
        if settings is None:
            raise NotFound(
                "Clampdown is not a Shared Signals transmitter here: [ssf.transmitter] is not configured"
            )
        keys = rt.ssf_keys or TransmitterKeys.load(settings.signing_key_file, settings.previous_key_files)
        recorder = rt.store.recorder or EventRecorder(rt.settings.webhooks)
        wake = rt.ssf_pusher.notify if rt.ssf_pusher is not None else None
        return cls(rt.engine, settings, keys, recorder, rt.auth.record_denial, wake=wake)

    # metadata

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def metadata(self) -> dict[str, Any]:
        """The transmitter configuration metadata (SSF 1.0 section 7.1)."""
        return {
            "spec_version": "1_0",
            "issuer": self.issuer,
            "jwks_uri": api_url(self.issuer, "jwks"),
            "delivery_methods_supported": list(DELIVERY_METHODS),
            "configuration_endpoint": api_url(self.issuer, "streams"),
            "status_endpoint": api_url(self.issuer, "streams/status"),
            "add_subject_endpoint": api_url(self.issuer, "streams/subjects:add"),
            "remove_subject_endpoint": api_url(self.issuer, "streams/subjects:remove"),
            "verification_endpoint": api_url(self.issuer, "streams/verify"),
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
            "default_subjects": self.settings.default_subjects,
        }

    def metadata_path(self) -> str:
        """The issuer's path, as the well-known address carries it after /.well-known/ssf-configuration
        (empty when the issuer has none)."""
        return urlsplit(self.issuer).path.strip("/")

    def jwks(self) -> dict[str, Any]:
        """The public keys SETs are signed with (the current one, and those of before a rotation)."""
        return self.keys.jwks()

    def configuration(self, stream: Stream) -> dict[str, Any]:
        """A stream's configuration as the receiver reads it."""
        return stream.configuration(self.issuer, self.settings.min_verification_interval_seconds)

    # who may

    async def owner(self, caller: Principal, attempted: str, stream_id: str | None = None) -> str:
        """The caller as a stream owner; PermissionDenied (audited) without `signals:streams` or
        with access limited to some directories."""
        try:
            require_permission(caller, SIGNALS_STREAMS, "manage Shared Signals streams")
            require_unscoped(caller, "manage Shared Signals streams")
        except PermissionDenied as exc:
            await self.record_denial(caller, f"ssf.{attempted}", stream_id, exc.missing)
            raise
        return caller.username

    async def owned_in(self, conn: AsyncConnection, owner: str, stream_id: str) -> dict[str, Any]:
        """The owner's stream (locked for the transaction where the database can); NotFound for
        another's, a declared one, or none: the caller learns nothing of other streams."""
        stream_id = clean_text("stream_id", stream_id, MAX_SSF_STREAM_ID, required=True)
        query = select(ssf_streams).where(ssf_streams.c.stream_id == stream_id)
        row = (await conn.execute(query.with_for_update())).mappings().first()
        if row is None or row["owner"] != owner or owner.startswith(CONFIG_OWNER):
            raise NotFound(f"no stream {stream_id!r} of yours")
        return dict(row)

    def _event(self, name: EventName, actor: str, stream_id: str, **data: Any) -> AuditEvent:
        return ssf_stream_event(name, self.clock.now(), actor, stream_id, "api", **data)

    async def _commit_event(self, conn: AsyncConnection, event: AuditEvent) -> None:
        await self.recorder.record_in(conn, [event])

    def _committed(self, event: AuditEvent) -> None:
        """After a commit that may have queued a SET: the outputs told, the push sender woken."""
        self.recorder.after_commit([event])
        if self.wake is not None:
            self.wake()

    # streams

    async def list_streams(self, caller: Principal) -> list[Stream]:
        """The caller's streams, oldest first."""
        owner = await self.owner(caller, "streams.read")
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(ssf_streams).where(ssf_streams.c.owner == owner).order_by(ssf_streams.c.created_at)
            )
            return [Stream.from_row(dict(r)) for r in rows.mappings()]

    async def all_streams(self, caller: Principal) -> list[Stream]:
        """Every stream, declared and receivers', oldest first: for the operator (settings:manage)."""
        try:
            require_permission(caller, SETTINGS_MANAGE, "see every Shared Signals stream")
        except PermissionDenied as exc:
            await self.record_denial(caller, "ssf.streams.read_all", None, exc.missing)
            raise
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(ssf_streams).order_by(ssf_streams.c.created_at, ssf_streams.c.stream_id)
            )
            return [Stream.from_row(dict(r)) for r in rows.mappings()]

    async def get_stream(self, caller: Principal, stream_id: str) -> Stream:
        owner = await self.owner(caller, "streams.read", stream_id)
        async with self.engine.connect() as conn:
            return Stream.from_row(await self.owned_in(conn, owner, stream_id))

    async def create_stream(
        self, caller: Principal, request: StreamRequest, source: str | None = None
    ) -> Stream:
        """A new stream of the caller's (SSF 1.0 section 8.1.1.1): enabled, with a random id."""
        owner = await self.owner(caller, "streams.create")
        if request.delivery is None:
            raise InvalidInput("delivery: give the delivery method (push or poll)")
        check_stated(request, self.issuer, None)
        delivery = check_delivery(request.delivery)
        audience = (
            check_audience(request.aud) if request.aud is not None else default_audience(delivery, owner)
        )
        events = check_events(request.events_requested or ())
        description = check_description(request.description)
        now = self.clock.now()
        stream_id = secrets.token_urlsafe(16)
        row = {
            "stream_id": stream_id, "owner": owner, "description": description, "audience": list(audience),
            "events_requested": list(events), "delivery_method": delivery.method,
            "endpoint_url": delivery.endpoint_url, "authorization_header": delivery.authorization_header,
            "status": ENABLED, "status_reason": None, "created_at": now, "updated_at": now,
            "verified_at": None,
        }  # fmt: skip
        event = self._event(EventName.SSF_STREAM_CREATED, owner, stream_id, source=source, **shown(row))
        async with self.engine.begin() as conn:
            held = await conn.scalar(
                select(func.count()).select_from(ssf_streams).where(ssf_streams.c.owner == owner)
            )
            if (held or 0) >= MAX_SSF_STREAMS_PER_OWNER:
                raise InvalidInput(
                    f"{owner} holds {held} streams, the most one receiver may: delete one first"
                )
            await conn.execute(insert(ssf_streams), [row])
            await self._commit_event(conn, event)
        self.recorder.after_commit([event])
        return Stream.from_row(row)

    async def update_stream(
        self,
        caller: Principal,
        stream_id: str,
        request: StreamRequest,
        *,
        replace: bool = False,
        source: str | None = None,
    ) -> Stream:
        """Change the members the request gives (PATCH, section 8.1.1.3), or all receiver-supplied
        ones, those not given back to their defaults (`replace`: PUT, section 8.1.1.4)."""
        owner = await self.owner(caller, "streams.update", stream_id)
        async with self.engine.begin() as conn:
            row = await self.owned_in(conn, owner, stream_id)
            check_stated(request, self.issuer, tuple(row["audience"]))
            changes: dict[str, Any] = {}
            if request.delivery is not None:
                delivery = check_delivery(request.delivery)
                changes.update(delivery_method=delivery.method, endpoint_url=delivery.endpoint_url,
                               authorization_header=delivery.authorization_header)  # fmt: skip
            elif replace:
                raise InvalidInput("delivery: a replacement gives the whole configuration, its delivery too")
            if request.events_requested is not None or replace:
                changes["events_requested"] = list(check_events(request.events_requested or ()))
            if request.description_given or replace:
                changes["description"] = check_description(request.description)
            changed = {k: v for k, v in changes.items() if row[k] != v}
            events = []
            if changed:
                await conn.execute(
                    update(ssf_streams).where(ssf_streams.c.stream_id == row["stream_id"])
                    .values(**changed, updated_at=self.clock.now())
                )  # fmt: skip
                row.update(changed)
                events.append(self._event(EventName.SSF_STREAM_UPDATED, owner, row["stream_id"],
                                          source=source, changed=sorted(changed), **shown(row)))  # fmt: skip
                await self.recorder.record_in(conn, events)
        self.recorder.after_commit(events)
        return Stream.from_row(row)

    async def delete_stream(self, caller: Principal, stream_id: str, source: str | None = None) -> None:
        """Delete a stream with its subjects and its SETs not yet delivered (section 8.1.1.5)."""
        owner = await self.owner(caller, "streams.delete", stream_id)
        async with self.engine.begin() as conn:
            row = await self.owned_in(conn, owner, stream_id)
            # The foreign keys cascade; deleted here too, so no engine's setting decides it.
            for table in (ssf_outbox, ssf_stream_subjects):
                await conn.execute(delete(table).where(table.c.stream_id == row["stream_id"]))
            await conn.execute(delete(ssf_streams).where(ssf_streams.c.stream_id == row["stream_id"]))
            event = self._event(
                EventName.SSF_STREAM_DELETED, owner, row["stream_id"], source=source, **shown(row)
            )
            await self._commit_event(conn, event)
        self.recorder.after_commit([event])

    # status

    async def set_status(
        self,
        caller: Principal,
        stream_id: str,
        status: str,
        reason: str | None = None,
        source: str | None = None,
    ) -> Stream:
        """Enable, pause or disable a stream (section 8.1.2.2)."""
        owner = await self.owner(caller, "streams.status", stream_id)
        if status not in STREAM_STATUSES:
            raise InvalidInput(f"status: {status[:40]!r} is not one of {', '.join(STREAM_STATUSES)}")
        reason = optional_text("reason", reason, MAX_SSF_DESCRIPTION)
        async with self.engine.begin() as conn:
            row = await self.owned_in(conn, owner, stream_id)
            event = await self.status_in(conn, row, status, reason, owner, "api", source)
        if event is not None:
            self._committed(event)
        return Stream.from_row(row)

    async def status_in(
        self,
        conn: AsyncConnection,
        row: dict[str, Any],
        status: str,
        reason: str | None,
        actor: str,
        channel: str,
        source: str | None,
    ) -> AuditEvent | None:
        """Change `row`'s status inside `conn` (and `row` itself); the audit event, or None when it
        was already so."""
        before = row["status"]
        if before == status and row["status_reason"] == reason:
            return None
        now = self.clock.now()
        await conn.execute(
            update(ssf_streams).where(ssf_streams.c.stream_id == row["stream_id"])
            .values(status=status, status_reason=reason, updated_at=now)
        )  # fmt: skip
        row.update(status=status, status_reason=reason, updated_at=now)
        dropped = 0
        if status == DISABLED:
            result = await conn.execute(
                update(ssf_outbox)
                .where(ssf_outbox.c.stream_id == row["stream_id"], ssf_outbox.c.status == "pending")
                .values(status=DROPPED, last_error="dropped: the stream was disabled")
            )  # fmt: skip
            dropped = int(result.rowcount or 0)
        elif status != before:
            payload = {"status": status, **({"reason": reason} if reason else {})}
            what = Transmission({STREAM_UPDATED: payload}, stream_sub_id(row["stream_id"]), row["stream_id"])
            await enqueue_in(conn, self.settings, self.keys, [row], what, now)
        event = ssf_stream_event(
            EventName.SSF_STREAM_STATUS_CHANGED, now, actor, row["stream_id"], channel, source=source,
            status=status, previous=before, reason=reason, dropped=dropped,
        )  # fmt: skip
        await self._commit_event(conn, event)
        return event

    # subjects

    async def change_subject(
        self,
        caller: Principal,
        stream_id: str,
        subject: Any,
        *,
        add: bool,
        verified: bool | None = None,
        source: str | None = None,
    ) -> None:
        """Add a subject to a stream or remove it (section 8.1.3): under default_subjects ALL a
        removed one no longer receives, under NONE only added ones do."""
        owner = await self.owner(caller, "streams.subjects", stream_id)
        key, sub_id = check_subject(subject)
        async with self.engine.begin() as conn:
            row = await self.owned_in(conn, owner, stream_id)
            where = (
                ssf_stream_subjects.c.stream_id == row["stream_id"],
                ssf_stream_subjects.c.subject_key == key,
            )
            found = (await conn.execute(select(ssf_stream_subjects.c.included).where(*where))).first()
            now = self.clock.now()
            if found is None:
                held = await conn.scalar(
                    select(func.count()).select_from(ssf_stream_subjects)
                    .where(ssf_stream_subjects.c.stream_id == row["stream_id"])
                )  # fmt: skip
                if (held or 0) >= MAX_SSF_SUBJECTS_PER_STREAM:
                    raise InvalidInput(f"stream {row['stream_id']} holds {held} subjects, the most it may")
                await conn.execute(insert(ssf_stream_subjects), [{
                    "stream_id": row["stream_id"], "subject_key": key, "subject": sub_id, "included": add,
                    "updated_at": now,
                }])  # fmt: skip
            else:
                await conn.execute(
                    update(ssf_stream_subjects)
                    .where(*where)
                    .values(subject=sub_id, included=add, updated_at=now)
                )
            event = self._event(
                EventName.SSF_STREAM_SUBJECTS_CHANGED, owner, row["stream_id"], source=source,
                change="added" if add else "removed", subject=key, verified=verified,
            )  # fmt: skip
            await self._commit_event(conn, event)
        self.recorder.after_commit([event])

    # verification

    async def verify(
        self, caller: Principal, stream_id: str, state: str | None = None, source: str | None = None
    ) -> str:
        """Queue a verification SET to the stream (section 8.1.4), carrying `state`; its jti.
        TooManyAttempts when asked sooner than min_verification_interval after the last one."""
        owner = await self.owner(caller, "streams.verify", stream_id)
        if state is not None:
            state = clean_text("state", state, MAX_SSF_STATE)
        interval = self.settings.min_verification_interval_seconds
        async with self.engine.begin() as conn:
            row = await self.owned_in(conn, owner, stream_id)
            if row["status"] == DISABLED:
                raise InvalidInput(f"stream {row['stream_id']} is disabled: enable it to verify it")
            now = self.clock.now()
            last = row["verified_at"]
            if last is not None and now < last + timedelta(seconds=interval):
                wait = math.ceil((last + timedelta(seconds=interval) - now).total_seconds())
                raise TooManyAttempts(
                    f"stream {row['stream_id']} was verified less than {interval} seconds ago "
                    f"(min_verification_interval): ask again in {wait} seconds", retry_after=wait,
                )  # fmt: skip
            await conn.execute(
                update(ssf_streams).where(ssf_streams.c.stream_id == row["stream_id"]).values(verified_at=now)
            )
            payload = {"state": state} if state is not None else {}
            what = Transmission({VERIFICATION: payload}, stream_sub_id(row["stream_id"]), row["stream_id"])
            jtis = await enqueue_in(conn, self.settings, self.keys, [row], what, now)
            event = self._event(EventName.SSF_STREAM_VERIFIED, owner, row["stream_id"], source=source,
                                jti=jtis[0], state=state)  # fmt: skip
            await self._commit_event(conn, event)
        self._committed(event)
        return jtis[0]

    # declared streams

    async def set_declared_status(self, name: str, status: str, reason: str | None, actor: str) -> Stream:
        """Pause, disable or enable a declared stream (the operator's, from the console or the CLI)."""
        if status not in STREAM_STATUSES:
            raise InvalidInput(f"status: {status[:40]!r} is not one of {', '.join(STREAM_STATUSES)}")
        reason = optional_text("reason", reason, MAX_SSF_DESCRIPTION)
        async with self.engine.begin() as conn:
            found = (await conn.execute(
                select(ssf_streams).where(ssf_streams.c.stream_id == name).with_for_update()
            )).mappings().first()  # fmt: skip
            if found is None or found["owner"] != CONFIG_OWNER + name:
                raise NotFound(f"no declared stream {name!r} ([ssf.transmitter.streams.NAME])")
            row = dict(found)
            event = await self.status_in(conn, row, status, reason, actor, "console", None)
        if event is not None:
            self._committed(event)
        return Stream.from_row(row)


def shown(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of a stream: never its push header."""
    return {
        "owner": row["owner"],
        "delivery_method": row["delivery_method"],
        "endpoint_url": row["endpoint_url"],
        "audience": list(row["audience"]),
        "events_requested": list(row["events_requested"]),
        "description": row["description"],
        "authorization_header_set": bool(row["authorization_header"]),
    }


def streams_for(rt: Runtime, state: Any) -> SignalStreams:
    """The app's transmitter (kept in `state.ssf_streams`); NotFound when none is configured."""
    found: SignalStreams | None = getattr(state, "ssf_streams", None)
    if found is None:
        found = SignalStreams.from_runtime(rt)
        state.ssf_streams = found
    return found
