"""Clampdown's SETs out, in the tests: [ssf.transmitter] settings and keys, streams written straight
into ssf_streams (as the stream management API or the declared streams would), the outbox read back,
and a SET verified with the published JWKS as a receiver would."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.config import SsfTransmitterSettings
from clampdown.db.tables import ssf_outbox, ssf_stream_subjects, ssf_streams
from clampdown.secevents import CONTAINMENT_EVENTS, PUSH, TransmitterKeys, generate_key

ISSUER = "https://clampdown.test"


def transmitter_settings(tmp_path: Path, issuer: str = ISSUER, **changes: Any) -> SsfTransmitterSettings:
    """[ssf.transmitter] with a new EC key in tmp_path (made once per folder)."""
    key = tmp_path / "ssf-out-signing.pem"
    if not key.exists():
        generate_key(str(key))
    return SsfTransmitterSettings(issuer=issuer, signing_key_file=str(key), **changes)


def keys_of(settings: SsfTransmitterSettings) -> TransmitterKeys:
    return TransmitterKeys.load(settings.signing_key_file, settings.previous_key_files)


async def add_stream(
    engine: AsyncEngine,
    stream_id: str,
    *,
    events: Sequence[str] = CONTAINMENT_EVENTS,
    status: str = "enabled",
    endpoint_url: str | None = "https://receiver.test/events",
    authorization_header: str | None = None,
    audience: str = "https://receiver.test",
) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(ssf_streams).values(
                stream_id=stream_id, owner="tests", audience=[audience], events_requested=list(events),
                delivery_method=PUSH, endpoint_url=endpoint_url, authorization_header=authorization_header,
                status=status, created_at=now, updated_at=now,
            )
        )  # fmt: skip


async def mark_subject(engine: AsyncEngine, stream_id: str, email: str, included: bool) -> None:
    """The receiver added (True) or removed (False) the subject with this address."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(ssf_stream_subjects).values(
                stream_id=stream_id, subject_key=f"email:{email.lower()}",
                subject={"format": "email", "email": email}, included=included, updated_at=datetime.now(UTC),
            )
        )  # fmt: skip


async def outbox(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The outbox's rows, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(ssf_outbox).order_by(ssf_outbox.c.id))
        return [dict(r) for r in rows.mappings()]


def verified(
    token: str, keys: TransmitterKeys, audience: str = "https://receiver.test", issuer: str = ISSUER
) -> dict[str, Any]:
    """A SET's claims, its signature checked against the published JWKS (public keys only)."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "secevent+jwt"
    jwk = next(k for k in keys.jwks()["keys"] if k["kid"] == header["kid"])
    assert "d" not in jwk  # the JWKS holds no private part
    key = jwt.PyJWK(jwk).key
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=[jwk["alg"]], audience=audience, issuer=issuer)
    return claims
