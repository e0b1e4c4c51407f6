"""The database's clock: lease times come from it, so workers on machines whose clocks disagree
still agree on when a lease ends."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# SQLite: the time of the statement, in milliseconds; PostgreSQL: the real time, not the
# transaction's start (a claim can wait on a lock first).
_SQLITE_NOW = text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")
_POSTGRESQL_NOW = text("SELECT clock_timestamp()")


async def database_now(conn: AsyncConnection) -> datetime:
    """The database server's current time, timezone-aware UTC."""
    if conn.dialect.name == "sqlite":
        stamp = datetime.fromisoformat(str((await conn.execute(_SQLITE_NOW)).scalar_one()))
    else:
        stamp = (await conn.execute(_POSTGRESQL_NOW)).scalar_one()
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
