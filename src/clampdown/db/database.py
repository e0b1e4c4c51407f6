"""Database engines: SQLite (WAL) by default, PostgreSQL by URL; both through async drivers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue, not fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url` (plain sqlite:/// or postgresql:// URLs are accepted)."""
    driver_url = async_url(url)
    if is_sqlite(url):
        # One connection: SQLite has one writer anyway, and writers from several connections
        # wait in SQLite's busy handler, which sleeps in steps up to 100 ms. A queue in-process
        # is fairer and much faster.
        engine = create_async_engine(driver_url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=60)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        driver_url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )
