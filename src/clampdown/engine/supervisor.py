"""The supervisor of a process's background jobs: the worker, the webhook dispatcher, the hunting
schedule. Each job is a coroutine factory taking the stop event; one that raises is restarted after
an exponential, capped, jittered back-off (the one retry policy), its failure logged once, and its
health (running, restarting since when after which error, stopped) kept for readiness and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.engine.metrics import JOB_RESTARTS, JOB_UP
from clampdown.retry import RetryPolicy

log = logging.getLogger(__name__)

JobFactory = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
# A job that ran this long without failing is healthy again: its next failure starts the back-off over.
HEALTHY_AFTER_SECONDS = 60.0
BACKOFF = RetryPolicy(max_attempts=1_000_000, base_seconds=1.0, max_seconds=60.0)


class JobState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # failed; waiting for its back-off before the next start
    STOPPED = "stopped"  # ended: told to stop, or its work was done


@dataclass(frozen=True)
class JobHealth:
    """One job as readiness and metrics see it."""

    name: str
    state: JobState
    since: datetime  # when it entered that state
    restarts: int  # how many times it was restarted after an error
    error: str | None = None  # the last failure, while restarting

    @property
    def ok(self) -> bool:
        return self.state is JobState.RUNNING

    def describe(self) -> str:
        """'ok', or what is wrong in words, for /readyz."""
        if self.state is JobState.RUNNING:
            return "ok"
        if self.state is JobState.RESTARTING:
            return f"restarting since {self.since.isoformat()} after error: {self.error}"
        return f"stopped since {self.since.isoformat()}"


class Supervisor:
    """Runs named jobs until `stop()`; restarts each one that fails."""

    def __init__(
        self, *, policy: RetryPolicy = BACKOFF, clock: Clock = SYSTEM_CLOCK,
        healthy_after: float = HEALTHY_AFTER_SECONDS,
    ) -> None:  # fmt: skip
        self.stopping = asyncio.Event()
        self._stopping_last = asyncio.Event()  # for the jobs that stop after all the others
        self._last: set[str] = set()
        self._policy = policy
        self._clock = clock
        self._healthy_after = healthy_after
        self._health: dict[str, JobHealth] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: JobFactory, *, last: bool = False) -> None:
        """Run `factory(stop_event)` as job `name`, restarting it after every error. A job started
        with `last` is told to stop only once every other job has stopped (the audit anchor: its
        final checkpoint then covers their last events)."""
        if name in self._tasks:
            raise ValueError(f"a background job named {name!r} is already supervised")
        self._set(name, JobState.RUNNING, restarts=0)
        JOB_RESTARTS.labels(name)  # shown as 0 from the start, so a rate over it is defined
        stopping = self._stopping_last if last else self.stopping
        if last:
            self._last.add(name)
        self._tasks[name] = asyncio.create_task(self._keep(name, factory, stopping), name=f"job-{name}")

    def health(self) -> list[JobHealth]:
        """Every job's health, in the order they were started."""
        return list(self._health.values())

    async def stop(self) -> None:
        """Tell every job to stop and wait until they have (a job finishes what it has in flight)."""
        self.stopping.set()
        first = [task for name, task in self._tasks.items() if name not in self._last]
        await asyncio.gather(*first, return_exceptions=True)
        self._stopping_last.set()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def wait(self, name: str) -> None:
        """Until job `name` has ended for good (its work done, or stopped)."""
        await asyncio.gather(self._tasks[name], return_exceptions=True)

    def _set(self, name: str, state: JobState, *, restarts: int, error: str | None = None) -> None:
        self._health[name] = JobHealth(name, state, self._clock.now(), restarts, error)
        JOB_UP.labels(name).set(1 if state is JobState.RUNNING else 0)

    async def _keep(self, name: str, factory: JobFactory, stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        failures = restarts = 0
        while not stopping.is_set():
            started = loop.time()
            try:
                await factory(stopping)
            except Exception as exc:
                if loop.time() - started >= self._healthy_after:
                    failures = 0
                failures += 1
                delay = self._policy.delay(failures)
                error = f"{type(exc).__name__}: {exc}"
                # One line per failure, the traceback only for the first of a run of failures.
                log.error("background job %s failed (%s); restarting in %.1f s", name, error, delay,
                          exc_info=failures == 1)  # fmt: skip
                self._set(name, JobState.RESTARTING, restarts=restarts, error=error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=delay)
                if stopping.is_set():
                    break
                restarts += 1
                JOB_RESTARTS.labels(name).inc()
                log.info("background job %s restarted (restart %d)", name, restarts)
                self._set(name, JobState.RUNNING, restarts=restarts)
                continue
            break  # it returned: its work is done, or it was told to stop
        self._set(name, JobState.STOPPED, restarts=restarts)
