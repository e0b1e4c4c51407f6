"""The jtis received (migration 0016, on SQLite and PostgreSQL): a jti is remembered once per
issuer, a second insert of it loses, and jtis whose SET is out of the iat window are pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.db import migrate
from clampdown.db.database import create_engine
from clampdown.db.tables import ssf_received_jtis
from clampdown.signals import replay

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


async def test_a_jti_is_remembered_once_per_issuer_and_pruned_after_the_window(engine: AsyncEngine) -> None:
    old = NOW - timedelta(minutes=10)
    async with engine.begin() as conn:
        assert await replay.remember_in(conn, "https://a.test/", "j1", "a", NOW, NOW)
        assert await replay.remember_in(conn, "https://b.test/", "j1", "b", NOW, NOW)  # another issuer's
        assert await replay.remember_in(conn, "https://a.test/", "old", "a", old, old)
    async with engine.begin() as conn:
        assert not await replay.remember_in(conn, "https://a.test/", "j1", "a", NOW, NOW)  # a replay loses
    assert await replay.seen(engine, "https://a.test/", "j1")
    assert not await replay.seen(engine, "https://a.test/", "j2")
    async with engine.begin() as conn:
        assert await replay.prune_in(conn, NOW - timedelta(minutes=5)) == 1
    async with engine.connect() as conn:
        left = (await conn.execute(select(ssf_received_jtis.c.issuer, ssf_received_jtis.c.jti))).all()
    assert sorted(left) == [("https://a.test/", "j1"), ("https://b.test/", "j1")]


async def test_migration_0016_makes_the_table_and_takes_it_away(database_url: str) -> None:
    engine = create_engine(database_url)

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    def downgrade(connection: Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0015")

    try:
        await migrate.upgrade(engine, "0015")
        async with engine.connect() as conn:
            assert "ssf_received_jtis" not in await conn.run_sync(tables)
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert "ssf_received_jtis" in await conn.run_sync(tables)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            assert "ssf_received_jtis" not in await conn.run_sync(tables)
        assert await migrate.current_revision(engine) == "0015"
    finally:
        await engine.dispose()
