"""Database engines: SQLite (WAL) by default, PostgreSQL by URL; both through async drivers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    ProgrammingError,
    StatementError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from clampdown.errors import ConfigError

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def _driver_url(url: str, drivers: dict[str, str]) -> str:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database.url is not a database URL: '{url}'") from None
    backend = parsed.get_backend_name()
    if backend not in drivers:
        raise ConfigError(f"database.url: unsupported database '{backend}' (use sqlite or postgresql)")
    return parsed.set(drivername=drivers[backend]).render_as_string(hide_password=False)


def async_url(url: str) -> str:
    """The URL with the async driver Clampdown uses for that database."""
    return _driver_url(url, _ASYNC_DRIVERS)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_data_error(exc: BaseException) -> bool:
    """True for a write the data itself makes fail (too long, a broken constraint, a value the
    driver cannot send), which fails the same way when tried again; False for a failure of the
    database (down, restarting, locked), which the same write may survive."""
    if isinstance(exc, (DataError, IntegrityError, ProgrammingError)):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return True  # raised while binding the parameters, before the database saw them
    return isinstance(exc, (TypeError, ValueError))


_WRITE = "clampdown_write"  # the execution option that marks a write transaction


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling begins a transaction only at the first INSERT, so a
    # read before it sees no snapshot and two processes can both extend the same head: off, and
    # SQLAlchemy's `begin` below says BEGIN itself (SQLAlchemy's documented pattern for pysqlite).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A write transaction takes SQLite's one write lock at BEGIN, waiting its turn (busy_timeout),
    # so what it reads stays true until it commits: writers from several processes queue instead of
    # failing with "database is locked" or a unique violation on the audit chain's head. A read
    # (engine.connect()) begins deferred: WAL readers never wait for the writer, nor block it.
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


async def sqlite_pragma_outside_transaction(conn: AsyncConnection, pragma: str) -> None:
    """Run a PRAGMA that SQLite ignores inside a transaction (foreign_keys), on `conn`'s raw
    connection, before or after any transaction: SQLAlchemy's autobegin would wrap it in one."""
    if conn.in_transaction():
        raise RuntimeError(f"PRAGMA {pragma} must run outside a transaction")

    def run(sync: Connection) -> None:
        cursor = sync.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(f"PRAGMA {pragma}")
        finally:
            cursor.close()

    await conn.run_sync(run)


class SQLiteEngine(AsyncEngine):
    """An engine whose `begin()` is a write transaction (BEGIN IMMEDIATE); `connect()` reads."""

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.connect() as conn:
            await conn.execution_options(**{_WRITE: True})
            async with conn.begin():
                yield conn


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url` (plain sqlite:/// or postgresql:// URLs are accepted). Its errors
    never quote the statement's parameters (hide_parameters): a worker logs every failed write while
    the database is down, and those parameters are accounts, token hashes and results."""
    driver_url = async_url(url)
    if is_sqlite(url):
        # One connection: SQLite has one writer anyway, and writers from several connections
        # wait in SQLite's busy handler, which sleeps in steps up to 100 ms. A queue in-process
        # is fairer and much faster.
        engine = create_async_engine(
            driver_url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=60, hide_parameters=True
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return SQLiteEngine(engine.sync_engine)
    # pool_pre_ping: a connection the server dropped (a restart, a fail-over) is replaced at
    # checkout instead of failing the next statement.
    return create_async_engine(
        driver_url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
        hide_parameters=True,
    )  # fmt: skip
