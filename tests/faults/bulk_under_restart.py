"""A bulk worked by several `clampdown worker` processes while PostgreSQL restarts under them.

Shared by tests/faults/test_postgres_restart.py (which asserts the outcome) and
bench/faults_postgres_restart.py (which records the timings). The directory is the memory
provider on a shared SQLite file, so every call and every real change is counted across processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.faults.private_postgres import PrivateCluster
from tests.lab_config import bootstrap_admin, clampdown, memory_provider, memory_rows, write_config

FINAL = ("completed", "failed", "cancelled")


@dataclass
class Restart:
    """When the restart was issued and when the server accepted connections again (Unix times)."""

    mode: str
    down_seconds: float
    issued_at: float
    back_at: float
    completed_before: int  # actions completed when it was issued
    running_before: int  # and running (held by workers, some at the provider)


@dataclass
class BulkRun:
    """What a bulk left behind: in the database, in the directory and in the worker processes."""

    actions: int
    statuses: Counter[str]
    unfinished_reasons: list[tuple[int, str, str | None, str | None]]  # id, status, code, message
    changes_per_account: Counter[str]
    calls_per_action: Counter[int]
    retried: int  # actions claimed more than once
    outcome_events_per_action: Counter[int]  # action.completed events in the audit log
    audit_verify: subprocess.CompletedProcess[str]
    worker_pids: list[int]
    alive_at_end: list[bool]  # each worker process still running once the bulk had ended
    live_registered_pids: set[int]  # workers heartbeating in the workers table at the end
    exit_codes: list[int | None]  # after SIGTERM
    pids_finishing_after_restart: set[int]  # workers that completed an action after the restart
    first_requested: float
    first_finished: float
    last_finished: float
    finished_after_restart: list[float] = field(default_factory=list)
    restart: Restart | None = None
    server_started_at: float | None = None  # the postmaster's start time after the bulk
    logs: list[Path] = field(default_factory=list)

    @property
    def bulk_seconds(self) -> float:
        """From the bulk's request to its last action finishing."""
        return self.last_finished - self.first_requested

    @property
    def first_completion_after_restart(self) -> float | None:
        """Seconds from the restart command to the first action finishing once the server was back."""
        if self.restart is None or not self.finished_after_restart:
            return None
        return min(self.finished_after_restart) - self.restart.issued_at

    @property
    def recovery_seconds(self) -> float | None:
        """Seconds from the server accepting connections again to the first action finishing."""
        if self.restart is None or not self.finished_after_restart:
            return None
        return min(self.finished_after_restart) - self.restart.back_at


def _statuses(url: str) -> Counter[str] | None:
    """The actions per status, or None while the database does not answer."""
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            rows = conn.execute("SELECT status, count(*) FROM actions GROUP BY status").fetchall()
    except psycopg.OperationalError:
        return None
    return Counter({status: int(n) for status, n in rows})


def _wait(url: str, until: str, predicate, timeout: float) -> Counter[str]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        counts = _statuses(url)
        if counts is not None and predicate(counts):
            return counts
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {until}; the actions are {counts}")
        time.sleep(0.05)


def _spawn_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    # The log goes to a file: a pipe nobody reads would fill with the outage's warnings and block
    # the worker on its next log line, which is a fault of the harness, not of the worker.
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "clampdown", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _wait_registered(url: str, pids: list[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                found = {int(p) for (p,) in conn.execute("SELECT pid FROM workers").fetchall()}
        except (psycopg.errors.UndefinedTable, psycopg.OperationalError):  # not yet, or a busy machine
            found = set()
        if set(pids) <= found:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers {pids} did not register (registered: {found})")
        time.sleep(0.1)


def run_bulk(
    cluster: PrivateCluster,
    workdir: Path,
    *,
    restart_mode: str | None = "fast",
    down_seconds: float = 0.0,
    actions: int = 2000,
    workers: int = 4,
    restart_after: int = 500,
    delay_seconds: float = 0.2,
    timeout: float = 300,
) -> BulkRun:
    """Request a bulk of `actions` okta.suspend_user on `workers` worker processes; once
    `restart_after` have completed and some are running, restart the server (unless
    `restart_mode` is None, the baseline), at once or after `down_seconds`; wait until every
    action has ended; stop the workers."""
    url = cluster.create_database(f"clampdown_{os.urandom(4).hex()}")
    state = workdir / "directory.db"
    config = write_config(
        workdir / "clampdown.toml",
        url,
        providers={"okta": memory_provider("okta", state, delay_seconds=delay_seconds)},
        # Longer than the outage with the server down 8 s, even on a loaded machine (stop, 8 s,
        # start and recovery took up to 21 s at a load average of 15): a worker's writes wait that long.
        lease_seconds=30,
        poll_interval_seconds=0.05,
        claim_batch=50,
        concurrency=16,
    )
    users = workdir / "users.txt"
    users.write_text("\n".join(f"user{i:04d}" for i in range(actions)) + "\n")
    token = bootstrap_admin(config)
    logs = [workdir / f"worker{n}.log" for n in range(workers)]
    procs = [_spawn_worker(config, log) for log in logs]
    try:
        _wait_registered(url, [p.pid for p in procs])
        requested = clampdown(
            config, "act", "okta.suspend_user", "--from-file", str(users), "-r", "INC-15", token=token
        )
        if requested.returncode != 0:
            raise RuntimeError(f"the bulk request failed: {requested.stderr}")
        restart = None
        if restart_mode is not None:
            mid_bulk = lambda c: c["completed"] >= restart_after and c["running"] > 0  # noqa: E731
            before = _wait(url, f"{restart_after} completed", mid_bulk, timeout)
            issued = time.time()
            cluster.restart(restart_mode, down_seconds)
            back = time.time()
            restart = Restart(
                restart_mode, down_seconds, issued, back, before["completed"], before["running"]
            )
        ended = lambda c: sum(c[s] for s in FINAL) == actions  # noqa: E731
        _wait(url, "every action to end", ended, timeout)
        time.sleep(1)  # a worker that dies of what it met at the end has died by now
        alive = [p.poll() is None for p in procs]
        with psycopg.connect(url) as conn:
            live = {
                int(p) for (p,) in conn.execute(
                    "SELECT pid FROM workers WHERE expires_at > now() AT TIME ZONE 'UTC'"
                ).fetchall()
            }  # fmt: skip
            rows = conn.execute(
                "SELECT id, status, attempts, error_code, error_message,"
                " extract(epoch FROM requested_at), extract(epoch FROM finished_at) FROM actions"
            ).fetchall()
            events = conn.execute(
                "SELECT (data->>'action_id')::bigint, count(*) FROM audit_log"
                " WHERE event = 'action.completed' GROUP BY 1"
            ).fetchall()
        verified = clampdown(config, "audit", "verify", token=token)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        exit_codes: list[int | None] = []
        for p in procs:
            try:
                exit_codes.append(p.wait(60))
            except subprocess.TimeoutExpired:
                p.kill()
                exit_codes.append(None)
    changes = memory_rows(state, "changes")
    calls = memory_rows(state, "calls")
    finished = {int(r[0]): float(r[6]) for r in rows if r[6] is not None}
    after = {i: f for i, f in finished.items() if restart is not None and f > restart.back_at}
    return BulkRun(
        actions=actions,
        statuses=Counter(str(r[1]) for r in rows),
        unfinished_reasons=[(int(r[0]), r[1], r[3], r[4]) for r in rows if r[1] != "completed"],
        changes_per_account=Counter(account for account, *_ in changes),
        calls_per_action=Counter(int(action_id) for _, _, action_id, _ in calls),
        retried=sum(1 for r in rows if int(r[2]) > 1),
        outcome_events_per_action=Counter({int(i): int(n) for i, n in events}),
        audit_verify=verified,
        worker_pids=[p.pid for p in procs],
        alive_at_end=alive,
        live_registered_pids=live,
        exit_codes=exit_codes,
        pids_finishing_after_restart={int(pid) for _, _, action_id, pid in calls if int(action_id) in after},
        first_requested=min(float(r[5]) for r in rows),
        first_finished=min(finished.values()),
        last_finished=max(finished.values()),
        finished_after_restart=sorted(after.values()),
        restart=restart,
        server_started_at=cluster.started_at(),
        logs=logs,
    )
