"""The jti of every SET accepted, per issuer (RFC 8417 section 4.1: a receiver refuses a SET it has
seen), kept in the database so a restart or another instance refuses a replay too."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.db.tables import ssf_received_jtis


async def seen(engine: AsyncEngine, issuer: str, jti: str) -> bool:
    """Whether a SET with this issuer and jti was accepted before."""
    query = select(exists().where(ssf_received_jtis.c.issuer == issuer, ssf_received_jtis.c.jti == jti))
    async with engine.connect() as conn:
        return bool((await conn.execute(query)).scalar())


async def remember_in(
    conn: AsyncConnection, issuer: str, jti: str, receiver: str, issued_at: datetime, now: datetime
) -> bool:
    """Record the jti in the caller's transaction; False when another request recorded it first."""
    row = {"issuer": issuer, "jti": jti, "receiver": receiver, "issued_at": issued_at, "received_at": now}
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    result = await conn.execute(insert(ssf_received_jtis).values(row).on_conflict_do_nothing())
    return bool(result.rowcount)


async def prune_in(conn: AsyncConnection, issued_before: datetime) -> int:
    """Forget the jtis of SETs issued before the accepted window: such a SET is refused by its iat."""
    result = await conn.execute(
        delete(ssf_received_jtis).where(ssf_received_jtis.c.issued_at < issued_before)
    )
    return int(result.rowcount or 0)
