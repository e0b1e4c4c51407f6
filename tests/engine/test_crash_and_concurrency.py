"""No action lost, none run twice: SIGKILL mid-bulk, and four workers sharing PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.model import ActionFilter, ActionStatus
from clampdown.store.actions import ActionStore
from tests.lab_config import (
    bootstrap_admin,
    clampdown,
    memory_provider,
    memory_rows,
    spawn_worker,
    write_config,
)

pytestmark = pytest.mark.slow


async def _counts(store: ActionStore) -> Counter[ActionStatus]:
    return Counter(await store.count_by_status(ActionFilter()))


async def _wait_for(store: ActionStore, predicate, timeout: float) -> Counter[ActionStatus]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        counts = await _counts(store)
        if predicate(counts) or time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.1)


async def test_sigkill_mid_bulk_loses_nothing_and_changes_each_account_once(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "directory.db"
    config = write_config(
        tmp_path / "clampdown.toml",
        database_url,
        providers={"okta": memory_provider("okta", state, delay_seconds=0.05)},
        lease_seconds=2,
        poll_interval_seconds=0.05,
        concurrency=20,
        claim_batch=20,
    )
    users = tmp_path / "users.txt"
    users.write_text("\n".join(f"user{i:03d}@example.test" for i in range(500)) + "\n")
    token = bootstrap_admin(config)
    requested = clampdown(
        config, "act", "okta.suspend_user", "--from-file", str(users), "--reason", "INC-1", token=token
    )
    assert requested.returncode == 0, requested.stderr
    store = ActionStore(engine)

    first = spawn_worker(config)
    # Kill at a moment the worker holds actions, not between two of its claims.
    mid_bulk = lambda c: c[ActionStatus.COMPLETED] >= 100 and c[ActionStatus.RUNNING] > 0  # noqa: E731
    counts = await _wait_for(store, mid_bulk, 60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    counts = await _counts(store)
    assert counts[ActionStatus.RUNNING] > 0, f"the kill should land mid-bulk: {counts}"
    assert counts[ActionStatus.COMPLETED] < 500

    second = spawn_worker(config, "--until-drained")
    assert second.wait(120) == 0, second.stderr.read() if second.stderr else ""

    counts = await _counts(store)
    assert counts == Counter({ActionStatus.COMPLETED: 500}), counts
    changes = memory_rows(state, "changes")
    assert len(changes) == 500
    assert len({account for account, *_ in changes}) == 500
    done = await store.list_actions(ActionFilter(), limit=1000)
    retried = [a for a in done if a.attempts > 1]
    assert retried, "the actions running at the kill were retried"
    assert all(any(h.error_code == "interrupted" for h in a.history) for a in retried)
    # A retry that found the account already suspended reports it, instead of changing it again.
    assert all(a.state_before is not None and a.state_before.enabled for a in done)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_four_workers_on_postgresql_run_each_action_once(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    state = tmp_path / "directory.db"
    config = write_config(
        tmp_path / "clampdown.toml",
        database_url,
        providers={"okta": memory_provider("okta", state)},
        poll_interval_seconds=0.05,
        claim_batch=50,
    )
    users = tmp_path / "users.txt"
    users.write_text("\n".join(f"user{i:04d}" for i in range(2000)) + "\n")
    token = bootstrap_admin(config)
    result = clampdown(
        config, "act", "okta.suspend_user", "--from-file", str(users), "-r", "INC-2", token=token
    )
    assert result.returncode == 0, result.stderr

    workers = [spawn_worker(config, "--until-drained") for _ in range(4)]
    for w in workers:
        assert w.wait(180) == 0, w.stderr.read() if w.stderr else ""

    store = ActionStore(engine)
    assert await _counts(store) == Counter({ActionStatus.COMPLETED: 2000})
    calls = memory_rows(state, "calls")
    per_action = Counter(action_id for *_, action_id, _pid in calls)
    assert len(per_action) == 2000 and max(per_action.values()) == 1, "an action was executed twice"
    assert len({pid for *_, pid in calls}) > 1, "the work was shared between processes"
    assert len(memory_rows(state, "changes")) == 2000
