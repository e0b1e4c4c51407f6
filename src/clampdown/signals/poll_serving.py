"""Poll delivery served (RFC 8936): the receiver of a poll stream asks Clampdown for its SETs with
its API token, acknowledging (`ack`) or refusing (`setErrs`) those it got before.

Acknowledged SETs are marked `acknowledged`, refused ones `refused` with the receiver's error; the
answer holds the stream's pending SETs, oldest first, up to maxEvents, and whether more wait. A SET
stays pending until acknowledged or refused, so one answered but never acknowledged is answered
again. A paused or disabled stream answers none. `returnImmediately` false waits up to
SSF_LONG_POLL_SECONDS for a first SET (a long poll); the answer is then empty if none came.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update

from clampdown.audit.ssf_out import ENABLED
from clampdown.auth.principal import Principal
from clampdown.db.tables import ssf_outbox
from clampdown.errors import InvalidInput
from clampdown.limits import (
    MAX_SSF_DESCRIPTION,
    MAX_SSF_JTI,
    MAX_SSF_POLL_ACKS,
    MAX_SSF_POLL_EVENTS,
    SSF_LONG_POLL_SECONDS,
    clean_text,
)
from clampdown.secevents import POLL
from clampdown.signals.streams import SignalStreams

DEFAULT_MAX_EVENTS = 100  # when the receiver does not say (RFC 8936 leaves it to the transmitter)
LONG_POLL_STEP = 0.25  # seconds between looks while a long poll waits
MAX_ERR_CODE = 64


@dataclass(frozen=True)
class PollRequest:
    """An RFC 8936 poll: how many SETs at most, whether to wait, and the answer to earlier ones."""

    max_events: int | None = None
    return_immediately: bool = False
    acks: Sequence[str] = ()
    errors: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)  # jti -> (err, description)


@dataclass(frozen=True)
class PollAnswer:
    sets: dict[str, str]  # jti -> the SET
    more_available: bool


def _check(request: PollRequest) -> PollRequest:
    max_events = DEFAULT_MAX_EVENTS if request.max_events is None else request.max_events
    if not 0 <= max_events <= MAX_SSF_POLL_EVENTS:
        raise InvalidInput(f"maxEvents: give 0 to {MAX_SSF_POLL_EVENTS}")
    if len(request.acks) + len(request.errors) > MAX_SSF_POLL_ACKS:
        raise InvalidInput(f"ack and setErrs: at most {MAX_SSF_POLL_ACKS} jtis in one poll")
    acks = [clean_text("ack", jti, MAX_SSF_JTI, required=True) for jti in request.acks]
    errors = {}
    for jti, (err, description) in request.errors.items():
        jti = clean_text("setErrs", jti, MAX_SSF_JTI, required=True)
        err = clean_text(f"setErrs.{jti[:40]}.err", err, MAX_ERR_CODE, required=True)
        said = clean_text(f"setErrs.{jti[:40]}.description", description, MAX_SSF_DESCRIPTION)
        errors[jti] = (err, said)
    return PollRequest(max_events, request.return_immediately, acks, errors)


async def serve_poll(
    streams: SignalStreams, caller: Principal, stream_id: str, request: PollRequest
) -> PollAnswer:
    """One poll of the caller's poll stream: its acknowledgements and errors recorded, its pending
    SETs answered. NotFound for a stream not the caller's, InvalidInput for a push stream."""
    owner = await streams.owner(caller, "streams.poll", stream_id)
    request = _check(request)
    limit = request.max_events or 0
    deadline = time.monotonic() + (0 if request.return_immediately else SSF_LONG_POLL_SECONDS)
    first = True
    while True:
        async with streams.engine.begin() as conn:
            row = await streams.owned_in(conn, owner, stream_id)
            if row["delivery_method"] != POLL:
                raise InvalidInput(f"stream {row['stream_id']} delivers by push: it is not polled")
            if first:
                first = False
                now = streams.clock.now()
                mine = (ssf_outbox.c.stream_id == row["stream_id"], ssf_outbox.c.status == "pending")
                if request.acks:
                    await conn.execute(
                        update(ssf_outbox).where(*mine, ssf_outbox.c.jti.in_(list(request.acks)))
                        .values(status="acknowledged", delivered_at=now)
                    )  # fmt: skip
                for jti, (err, description) in request.errors.items():
                    said = f"{err}: {description}" if description else err
                    await conn.execute(
                        update(ssf_outbox).where(*mine, ssf_outbox.c.jti == jti)
                        .values(status="refused", last_error=said[:MAX_SSF_DESCRIPTION])
                    )  # fmt: skip
            found = []
            if row["status"] == ENABLED:
                found = list((await conn.execute(
                    select(ssf_outbox.c.id, ssf_outbox.c.jti, ssf_outbox.c.token)
                    .where(ssf_outbox.c.stream_id == row["stream_id"], ssf_outbox.c.status == "pending")
                    .order_by(ssf_outbox.c.id).limit(limit + 1)
                )).all())  # fmt: skip
                answered = found[:limit]
                if answered:
                    await conn.execute(
                        update(ssf_outbox).where(ssf_outbox.c.id.in_([r.id for r in answered]))
                        .values(attempts=ssf_outbox.c.attempts + 1)
                    )  # fmt: skip
        if found or limit == 0 or row["status"] != ENABLED or time.monotonic() >= deadline:
            break
        await asyncio.sleep(LONG_POLL_STEP)
    return PollAnswer({r.jti: r.token for r in found[:limit]}, len(found) > limit)
