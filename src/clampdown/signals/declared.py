"""The push streams the operator declares ([ssf.transmitter.streams.NAME]), written to ssf_streams
when the server or a worker starts, so a configured receiver has its stream before the first SET is
due: stream id NAME, owner "config:NAME", delivered by push. A declared stream keeps its status
across restarts (the console may pause it); a change to its configuration is applied; one no longer
declared is deleted with its outbox. Each creation, change and deletion is audited (actor "config");
a start with nothing changed records nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName, ssf_stream_event
from clampdown.audit.ssf_out import ENABLED
from clampdown.config import SsfPushStreamSettings
from clampdown.db.tables import ssf_outbox, ssf_stream_subjects, ssf_streams
from clampdown.errors import ConfigError
from clampdown.limits import MAX_SSF_DESCRIPTION, MAX_SSF_STREAM_ID
from clampdown.secevents import CONTAINMENT_EVENTS, PUSH
from clampdown.services.runtime import Runtime
from clampdown.signals.stream_config import CONFIG_OWNER
from clampdown.signals.streams import SignalStreams, shown, streams_for


def declared_row(name: str, stream: SsfPushStreamSettings) -> dict[str, Any]:
    """The ssf_streams columns a declaration sets (not its status nor its times)."""
    header = stream.authorization_header.get_secret_value() if stream.authorization_header else None
    description = (stream.description or "")[:MAX_SSF_DESCRIPTION] or None
    return {
        "stream_id": name,
        "owner": CONFIG_OWNER + name,
        "description": description,
        "audience": [stream.audience],
        "events_requested": list(stream.events or CONTAINMENT_EVENTS),  # empty: every supported one
        "delivery_method": PUSH,
        "endpoint_url": stream.endpoint_url,
        "authorization_header": header,
    }


async def sync_declared(streams: SignalStreams) -> list[str]:
    """Write the declared streams as configured; the ids of those created, changed or deleted.
    ConfigError when a name does not fit or is a receiver's stream id."""
    declared = streams.settings.streams
    for name in declared:
        if not name or len(name) > MAX_SSF_STREAM_ID:
            raise ConfigError(
                f"ssf.transmitter.streams.{name}: a stream name is 1 to {MAX_SSF_STREAM_ID} characters"
            )
    touched: list[str] = []
    events: list[AuditEvent] = []
    now = streams.clock.now()

    def audited(name: EventName, stream_id: str, row: dict[str, Any], **data: Any) -> None:
        events.append(ssf_stream_event(name, now, "config", stream_id, "config", **data, **shown(row)))
        touched.append(stream_id)

    async with streams.engine.begin() as conn:
        query = select(ssf_streams).where(
            ssf_streams.c.owner.startswith(CONFIG_OWNER, autoescape=True)
            | ssf_streams.c.stream_id.in_(list(declared))
        )
        rows = {r["stream_id"]: dict(r) for r in (await conn.execute(query)).mappings()}
        for name, stream in declared.items():
            wanted = declared_row(name, stream)
            row = rows.get(name)
            if row is not None and row["owner"] != wanted["owner"]:
                raise ConfigError(
                    f"ssf.transmitter.streams.{name}: a receiver's stream has the id {name!r}; "
                    "name the declared one otherwise"
                )
            if row is None:
                full = {**wanted, "status": ENABLED, "status_reason": None, "created_at": now,
                        "updated_at": now, "verified_at": None}  # fmt: skip
                await conn.execute(insert(ssf_streams), [full])
                audited(EventName.SSF_STREAM_CREATED, name, full)
                continue
            changed = {k: v for k, v in wanted.items() if row[k] != v}
            if changed:
                await conn.execute(
                    update(ssf_streams)
                    .where(ssf_streams.c.stream_id == name)
                    .values(**changed, updated_at=now)
                )
                row.update(changed)
                audited(EventName.SSF_STREAM_UPDATED, name, row, changed=sorted(changed))
        for stream_id, row in sorted(rows.items()):
            if row["owner"].startswith(CONFIG_OWNER) and stream_id not in declared:
                for table in (ssf_outbox, ssf_stream_subjects, ssf_streams):
                    await conn.execute(delete(table).where(table.c.stream_id == stream_id))
                audited(EventName.SSF_STREAM_DELETED, stream_id, row)
        await streams.recorder.record_in(conn, events)
    streams.recorder.after_commit(events)
    return touched


async def sync_declared_at_start(rt: Runtime, state: Any = None) -> list[str]:
    """At a server's or worker's start, when [ssf.transmitter] is configured: its keys read (a key
    that cannot be is a ConfigError: the start fails) and its declared streams written. `state`:
    the app's, which keeps the transmitter for the API."""
    if rt.settings.ssf.transmitter is None:
        return []
    streams = streams_for(rt, state) if state is not None else SignalStreams.from_runtime(rt)
    return await sync_declared(streams)
