"""The hash-chained audit log (audit/chain.py): order, hashes, tamper detection, concurrent writers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import GENESIS, NOT_ANCHORED, AuditEvent, AuditLog, ChainReport, row_hash
from clampdown.db.database import create_engine
from tests.audit.conftest import make_event


async def _rows(log: AuditLog) -> list[dict[str, Any]]:
    return [row async for row in log.rows()]


def _event_of(row: dict[str, Any]) -> AuditEvent:
    return AuditEvent(row["at"], row["actor"], row["event"], row["subject"], row["data"])


async def _four(engine: AsyncEngine) -> AuditLog:
    log = AuditLog(engine)
    await log.append([make_event(1), make_event(2)])
    await log.append([make_event(3), make_event(4)])
    return log


async def test_append_keeps_order_and_each_hash_covers_the_previous(engine: AsyncEngine) -> None:
    log = await _four(engine)
    rows = await _rows(log)
    assert [r["data"]["n"] for r in rows] == [1, 2, 3, 4]
    assert [r["subject"] for r in rows] == ["user1", "user2", "user3", "user4"]
    prev = GENESIS
    for row in rows:
        assert row["prev_hash"] == prev
        assert row["hash"] == row_hash(prev, _event_of(row))
        prev = row["hash"]
    # The previous hash is part of the digest: the same content on another predecessor differs.
    assert rows[1]["hash"] != row_hash(GENESIS, _event_of(rows[1]))
    assert await log.verify() == ChainReport(4, [], warnings=[NOT_ANCHORED])


async def test_an_empty_append_writes_nothing(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    await log.append([])
    assert await log.verify() == ChainReport(0, [], warnings=[NOT_ANCHORED])


async def test_verify_finds_an_edited_row(engine: AsyncEngine) -> None:
    log = await _four(engine)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"))
    report = await log.verify()
    count, breaks = report.entries, report.breaks
    assert count == 4
    assert [(b.seq, "edited" in b.problem) for b in breaks] == [(2, True)]


async def test_verify_finds_a_deleted_row(engine: AsyncEngine) -> None:
    log = await _four(engine)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    report = await log.verify()
    count, breaks = report.entries, report.breaks
    assert count == 3
    assert [(b.seq, "deleted" in b.problem) for b in breaks] == [(3, True)]


async def test_verify_finds_two_swapped_rows(engine: AsyncEngine) -> None:
    log = await _four(engine)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE audit_log SET seq = 1000 WHERE seq = 2"))
        await conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 3"))
        await conn.execute(text("UPDATE audit_log SET seq = 3 WHERE seq = 1000"))
    report = await log.verify()
    count, breaks = report.entries, report.breaks
    assert count == 4
    # Rows 2 and 3 and the one after them no longer follow their predecessor; no content changed.
    assert [b.seq for b in breaks] == [2, 3, 4]
    assert all("reordered" in b.problem for b in breaks)


def _assert_one_unbroken_chain(rows: list[dict[str, Any]], batches: list[list[AuditEvent]]) -> None:
    seen = [r["data"]["n"] for r in rows]
    assert sorted(seen) == sorted(e.data["n"] for batch in batches for e in batch)  # each exactly once
    for batch in batches:  # one append's events stay together and in order
        first = seen.index(batch[0].data["n"])
        assert seen[first : first + len(batch)] == [e.data["n"] for e in batch]
    prev = GENESIS
    for row in rows:
        assert row["prev_hash"] == prev and row["hash"] == row_hash(prev, _event_of(row))
        prev = row["hash"]


async def test_concurrent_appenders_on_one_engine_make_one_chain(engine: AsyncEngine) -> None:
    log = AuditLog(engine)
    batches = [[make_event(10 * i + j) for j in range(3)] for i in range(8)]
    await asyncio.gather(*(log.append(batch) for batch in batches))
    _assert_one_unbroken_chain(await _rows(log), batches)
    assert await log.verify() == ChainReport(24, [], warnings=[NOT_ANCHORED])


async def test_concurrent_appenders_on_two_engines_make_one_chain(
    engine: AsyncEngine, database_url: str
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("two engines racing on one chain is a PostgreSQL deployment")
    other = create_engine(database_url)
    try:
        logs = [AuditLog(engine), AuditLog(other)]
        batches = [[make_event(10 * i + j) for j in range(2)] for i in range(12)]
        await asyncio.gather(*(logs[i % 2].append(batch) for i, batch in enumerate(batches)))
    finally:
        await other.dispose()
    log = AuditLog(engine)
    _assert_one_unbroken_chain(await _rows(log), batches)
    assert await log.verify() == ChainReport(24, [], warnings=[NOT_ANCHORED])
