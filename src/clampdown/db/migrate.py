"""Schema migrations (Alembic), run through the same async engine as everything else."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.db.database import sqlite_pragma_outside_transaction

_SCRIPTS = Path(__file__).with_name("migrations")


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest migration this code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at, or None for an empty database."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to run again."""

    def run(connection: Connection) -> None:
        command.upgrade(_config(connection), revision)

    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            await conn.run_sync(run)
        return
    # SQLite alters a table by copying it; with foreign keys enforced, dropping the old copy of a
    # table whose rows point at each other (an undo at what it undoes) fails. The pragma only
    # changes outside a transaction; the references are checked once the copy is done.
    async with engine.connect() as conn:
        await sqlite_pragma_outside_transaction(conn, "foreign_keys=OFF")
        try:
            await conn.run_sync(run)
            broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
            if broken:
                raise RuntimeError(f"the migration left rows pointing nowhere: {broken[:5]}")
            await conn.commit()
        except BaseException:
            await conn.rollback()
            raise
        finally:
            await sqlite_pragma_outside_transaction(conn, "foreign_keys=ON")
