"""The jtis received (migration 0016, on SQLite and PostgreSQL): a jti is remembered once per
issuer, a second insert of it loses, and jtis whose SET is out of the iat window are pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

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
