"""The supervisor restarts a background job that fails, with back-off, and reports its health; the
worker's own loop outlives database errors."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import EngineSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.engine.supervisor import JobState, Supervisor
from clampdown.engine.worker import Worker
from clampdown.model import ActionStatus
from clampdown.retry import RetryPolicy
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore

FAST = EngineSettings(
    poll_interval_seconds=0.05, backoff_base_seconds=0.01, backoff_max_seconds=0.05, lease_seconds=0.6
)
QUICK = RetryPolicy(max_attempts=1_000, base_seconds=0.05, max_seconds=0.2)


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _sample(name: str, job: str) -> float:
    return REGISTRY.get_sample_value(name, {"job": job}) or 0.0


async def test_a_job_that_fails_on_a_missing_table_is_restarted_until_it_runs(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    """The job reads a table that does not exist yet: a real database error, every run, until the
    table is made; the supervisor backs off, logs each failure once, and health says what is wrong."""
    runs: list[str] = []
    rounds = asyncio.Event()

    async def job(stop: asyncio.Event) -> None:
        runs.append("start")
        async with engine.connect() as conn:
            await conn.execute(text("SELECT count(*) FROM job_input"))
        rounds.set()
        await stop.wait()

    name = f"reader-{engine.dialect.name}"
    restarts_before = _sample("clampdown_background_job_restarts_total", name)
    supervisor = Supervisor(policy=QUICK)
    caplog.set_level(logging.INFO, logger="clampdown.engine.supervisor")
    supervisor.start(name, job)
    await _until(lambda: len(runs) >= 3)
    [health] = supervisor.health()
    assert health.name == name and health.state in (JobState.RESTARTING, JobState.RUNNING)
    await _until(lambda: supervisor.health()[0].state is JobState.RESTARTING)
    health = supervisor.health()[0]
    assert "job_input" in (health.error or "") and not health.ok
    assert health.describe().startswith("restarting since ") and "job_input" in health.describe()
    assert _sample("clampdown_background_job_up", name) == 0.0

    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE job_input (id INTEGER)"))
    await asyncio.wait_for(rounds.wait(), 10)
    await _until(lambda: supervisor.health()[0].state is JobState.RUNNING)
    health = supervisor.health()[0]
    assert health.ok and health.describe() == "ok" and health.restarts == len(runs) - 1 >= 2
    assert _sample("clampdown_background_job_up", name) == 1.0
    assert _sample("clampdown_background_job_restarts_total", name) - restarts_before == health.restarts

    failures = [r for r in caplog.records if r.levelno == logging.ERROR and name in r.getMessage()]
    assert len(failures) == len(runs) - 1  # one line per failure, not one per loop spin
    assert failures[0].exc_info and not any(r.exc_info for r in failures[1:])  # the traceback once

    await supervisor.stop()
    assert supervisor.health()[0].state is JobState.STOPPED
    assert _sample("clampdown_background_job_up", name) == 0.0


async def test_back_off_grows_between_restarts() -> None:
    starts: list[float] = []
    loop = asyncio.get_running_loop()

    async def job(stop: asyncio.Event) -> None:
        starts.append(loop.time())
        raise RuntimeError("broken")

    supervisor = Supervisor(policy=RetryPolicy(max_attempts=100, base_seconds=0.04, max_seconds=0.32))
    supervisor.start("always-failing", job)
    await _until(lambda: len(starts) >= 6, timeout=15)
    await supervisor.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # equal jitter: each wait is between half and all of base * 2^(n-1), capped at 0.32 s
    assert gaps[0] < 0.1 and gaps[4] >= 0.16 and max(gaps) < 0.32 + 0.3
    assert supervisor.health()[0].state is JobState.STOPPED


async def test_a_job_that_ends_is_stopped_not_restarted() -> None:
    runs: list[int] = []

    async def job(stop: asyncio.Event) -> None:
        runs.append(1)

    supervisor = Supervisor(policy=QUICK)
    supervisor.start("one-shot", job)
    await supervisor.wait("one-shot")
    assert runs == [1] and supervisor.health()[0].state is JobState.STOPPED
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start("one-shot", job)
    await supervisor.stop()


async def test_worker_run_outlives_a_database_that_loses_its_tables(
    engine: AsyncEngine, admin: Principal, caplog: pytest.LogCaptureFixture
) -> None:
    """Every claim, count, heartbeat and registration fails while the tables are gone; `run()`
    keeps going and, once they are back, registers and drains the queue."""
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta"))
    action = await ActionService(store, {"okta": okta}).request("okta.suspend_user", "ann", "INC-1", admin)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE actions RENAME TO actions_away"))
        await conn.execute(text("ALTER TABLE workers RENAME TO workers_away"))
    worker = Worker(store, {"okta": okta}, FAST)
    run = asyncio.create_task(worker.run(until_drained=True))
    await asyncio.sleep(0.8)  # claims, counts and a heartbeat have failed by now
    assert not run.done(), run.exception() if run.done() else None
    assert any("could not" in r.getMessage() for r in caplog.records)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE actions_away RENAME TO actions"))
        await conn.execute(text("ALTER TABLE workers_away RENAME TO workers"))
    await asyncio.wait_for(run, 15)
    assert (await store.get(action.id)).status is ActionStatus.COMPLETED
    assert okta.calls == 1
