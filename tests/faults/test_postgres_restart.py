"""PostgreSQL restarted in the middle of a 2,000-action bulk worked by 4 worker processes: the
workers reconnect and carry on, no action is lost, none changes its account twice.

The restart is of a private cluster made for this test (tests/faults/private_postgres.py): the
machine's cluster on 5432 is shared. The timings are in bench/faults_postgres_restart.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.bulk_under_restart import run_bulk
from tests.faults.private_postgres import PrivateCluster, unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"a private PostgreSQL cluster is needed in CI: {reason}")
        pytest.skip(reason)
    made = PrivateCluster.create()
    try:
        yield made
    finally:
        made.drop()


@pytest.mark.parametrize(
    ("mode", "down_seconds"),
    [
        pytest.param("fast", 0.0, id="restart-fast"),
        # Killed without a checkpoint (crash recovery at start) and away longer than a blink.
        pytest.param("immediate", 8.0, id="immediate-down-8s"),
    ],
)
def test_workers_survive_a_postgres_restart_mid_bulk_and_run_each_action_once(
    cluster: PrivateCluster, tmp_path: Path, mode: str, down_seconds: float
) -> None:
    run = run_bulk(cluster, tmp_path, restart_mode=mode, down_seconds=down_seconds)
    logs = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in run.logs)

    assert run.restart is not None and run.server_started_at is not None
    assert run.server_started_at > run.restart.issued_at, "the server did not restart"
    assert run.restart.running_before > 0 and run.restart.completed_before < 2000, "not mid-bulk"
    # The workers survived: still running, heartbeating, and each took work after the restart.
    assert all(run.alive_at_end), f"a worker exited: {run.exit_codes}\n{logs}"
    assert run.live_registered_pids == set(run.worker_pids), logs
    assert run.pids_finishing_after_restart == set(run.worker_pids), logs
    assert run.exit_codes == [0, 0, 0, 0], f"a worker did not stop cleanly\n{logs}"
    # Nothing lost: every action ended, and completed (the directory was healthy throughout).
    assert run.statuses == {"completed": 2000}, run.unfinished_reasons[:10]
    # Nothing done twice: each account was changed exactly once, each action reached the directory
    # once (its outcome, written while the server was away, landed once it was back, so no lease
    # expired and no other worker ran it again), and the audit log says it completed once.
    changed_twice = [a for a, n in run.changes_per_account.items() if n != 1]
    assert len(run.changes_per_account) == 2000 and not changed_twice, changed_twice[:5]
    called_twice = [a for a, n in run.calls_per_action.items() if n != 1]
    assert len(run.calls_per_action) == 2000, "an action never reached the directory"
    assert not called_twice, f"{len(called_twice)} actions were run twice, e.g. {called_twice[:5]}"
    # (An action may still be claimed twice and run once: a claim whose commit's answer was lost
    # in the shutdown, taken again after its lease.)
    told_twice = [a for a, n in run.outcome_events_per_action.items() if n != 1]
    assert len(run.outcome_events_per_action) == 2000 and not told_twice, told_twice[:5]
    assert run.audit_verify.returncode == 0, run.audit_verify.stdout + run.audit_verify.stderr
