"""Anchoring the audit chain (audit/anchor.py, checkpoint.py): signed checkpoints of the head show a
cut tail, a chain rewritten by someone without the key, and a forged checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.anchor import Anchor
from clampdown.audit.chain import GENESIS, NOT_ANCHORED, AuditEvent, AuditLog, append_in, row_hash
from clampdown.audit.checkpoint import Checkpoint
from clampdown.config import AuditSettings
from clampdown.db.tables import audit_checkpoints, audit_log
from tests.audit.conftest import make_event

KEY = b"k" * 40
SETTINGS = AuditSettings(checkpoint_key="k" * 40)


async def _chain(engine: AsyncEngine, n: int) -> AuditLog:
    log = AuditLog(engine, KEY)
    await log.append([make_event(i) for i in range(1, n + 1)])
    return log


async def test_normal_operation_is_anchored_and_passes(engine: AsyncEngine) -> None:
    log = await _chain(engine, 5)
    anchor = Anchor(engine, KEY, SETTINGS)
    first = await anchor.checkpoint()
    assert first is not None and (first.seq, first.entries) == (5, 5)
    assert await anchor.checkpoint() is None  # nothing new: no second checkpoint of the same head
    await log.append([make_event(6), make_event(7)])
    second = await anchor.checkpoint()
    assert second is not None and second.entries == 7  # counted on from the first
    await log.append([make_event(8)])
    report = await log.verify()
    assert report.ok and report.anchored and report.checkpoint == second
    assert report.warnings == ["1 entries after the checkpoint of " + second.at.isoformat()
                               + " are not covered by a checkpoint yet"]  # fmt: skip
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(audit_checkpoints))).scalar_one() == 2


async def test_deleting_the_newest_entries_is_found_and_counted(engine: AsyncEngine) -> None:
    log = await _chain(engine, 10)
    assert await Anchor(engine, KEY, SETTINGS).checkpoint() is not None
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq > 7"))
    report = await log.verify()
    assert not report.ok
    # The chain itself still holds together: only the checkpoint shows the cut.
    assert [(b.seq, b.problem.split(":")[0]) for b in report.breaks] == [(10, "3 entries missing")]
    assert "covers 10 entries up to entry 10, the chain holds 7" in report.breaks[0].problem


async def test_a_cut_tail_grown_again_does_not_match(engine: AsyncEngine) -> None:
    # SQLite reuses the freed sequence numbers: the entry at the checkpoint exists again, with another hash.
    log = await _chain(engine, 6)
    assert await Anchor(engine, KEY, SETTINGS).checkpoint() is not None
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq > 3"))
    await log.append([make_event(100 + i) for i in range(5)])
    report = await log.verify()
    assert not report.ok and len(report.breaks) == 1
    assert "3 entries missing" in report.breaks[0].problem or "altered" in report.breaks[0].problem


async def test_a_chain_rewritten_without_the_key_fails_at_the_checkpoint(engine: AsyncEngine) -> None:
    log = await _chain(engine, 4)
    assert await Anchor(engine, KEY, SETTINGS).checkpoint() is not None
    # Someone with write access rewrites every row consistently: the chain alone verifies.
    async with engine.begin() as conn:
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).mappings().all()
        await conn.execute(audit_log.delete())
        prev = GENESIS
        for row in rows:
            event = AuditEvent(row["at"], "mallory" if row["seq"] == 2 else row["actor"], row["event"],
                               row["subject"], row["data"])  # fmt: skip
            digest = row_hash(prev, event)
            await conn.execute(insert(audit_log).values(seq=row["seq"], at=event.at, actor=event.actor,
                               event=event.event, subject=event.subject, data=event.data, prev_hash=prev,
                               hash=digest))  # fmt: skip
            prev = digest
    assert (await AuditLog(engine).verify()).breaks == []  # without the checkpoints nothing shows
    report = await log.verify()
    assert [b.seq for b in report.breaks] == [4]
    assert "another hash" in report.breaks[0].problem and "rewritten" in report.breaks[0].problem
    assert not report.anchored


async def test_a_forged_checkpoint_is_reported(engine: AsyncEngine) -> None:
    log = await _chain(engine, 3)
    async with engine.begin() as conn:
        head = (await conn.execute(text("SELECT hash FROM audit_log WHERE seq = 3"))).scalar_one()
        forged = Checkpoint.signed(b"not-the-key" * 4, 3, head, 3, datetime.now(UTC))
        await conn.execute(insert(audit_checkpoints).values(**forged.to_json() | {"at": forged.at}))
    report = await log.verify()
    assert [b.seq for b in report.breaks] == [3] and "forged" in report.breaks[0].problem
    assert not report.anchored
    # A forged checkpoint is never built upon: the next real one is counted afresh.
    await log.append([make_event(4)])
    made = await Anchor(engine, KEY, SETTINGS).checkpoint()
    assert made is not None and (made.seq, made.entries) == (4, 4)


async def test_without_a_key_the_chain_is_not_anchored_a_warning_not_a_failure(engine: AsyncEngine) -> None:
    await _chain(engine, 2)
    report = await AuditLog(engine).verify()
    assert report.ok and not report.anchored and report.warnings == [NOT_ANCHORED]


async def test_with_a_key_and_no_checkpoint_yet_verify_warns(engine: AsyncEngine) -> None:
    log = await _chain(engine, 2)
    report = await log.verify()
    assert report.ok and not report.anchored
    assert report.warnings and "no signed checkpoint" in report.warnings[0]


async def test_an_outside_copy_finds_a_cut_even_when_checkpoints_were_deleted(engine: AsyncEngine) -> None:
    log = await _chain(engine, 5)
    made = await Anchor(engine, KEY, SETTINGS).checkpoint()
    assert made is not None
    copy = Checkpoint.from_json({"event": "audit.checkpoint", "data": made.to_json()})  # as a SIEM has it
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq > 3"))
        await conn.execute(audit_checkpoints.delete())
    assert (await log.verify()).ok  # the database alone no longer shows it
    report = await log.verify([copy])
    assert [b.problem.split(":")[0] for b in report.breaks] == ["2 entries missing"]


async def test_append_in_is_unchanged_by_anchoring(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await append_in(conn, [make_event(1)])
    assert (await AuditLog(engine, KEY).verify()).entries == 1
