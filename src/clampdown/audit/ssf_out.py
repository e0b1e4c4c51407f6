"""Shared Signals out: signed SETs committed to the outbox (`ssf_outbox`) in the transaction of
their cause, one row per stream that is to receive them.

A stream receives an event when it asked for that event type (verification and stream-updated
always), it is not disabled (a paused stream's SETs wait), and the subject is one of its subjects:
every subject unless removed when the transmitter's default is ALL, only the added ones when NONE.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clampdown.config import SsfTransmitterSettings
from clampdown.db.tables import ssf_outbox, ssf_stream_subjects, ssf_streams
from clampdown.secevents import STREAM_EVENTS, TransmitterKeys

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
