"""A provider that accepts connections and never answers: its actions end `failed` with a timeout
once the engine's attempt budget is spent, their leases are renewed (never claimed twice) while
the requests hang, and the actions of another provider complete meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import EngineSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.engine.worker import Worker
from clampdown.model import Action, ActionFilter, ActionStatus
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from tests.lab_config import (
    bootstrap_admin,
    clampdown,
    memory_provider,
    memory_rows,
    spawn_worker,
    write_config,
)

BUDGET = 4.0  # the engine's attempt budget for okta; the lease (1 s) is much shorter
OKTA_USERS = [f"hung{i}@lab.example.test" for i in range(3)]
ENTRA_USERS = [f"healthy{i}@memory.test" for i in range(5)]


class HungServer:
    """A TCP listener that accepts every connection, reads what is sent and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.received = 0
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                self._drain()
                continue
            conn.setblocking(False)
            self._open.append(conn)
            self.accepted += 1
            self._drain()

    def _drain(self) -> None:
        for conn in self._open:
            with contextlib.suppress(BlockingIOError, OSError):
                self.received += len(conn.recv(65536))

    def __enter__(self) -> HungServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._open:
            conn.close()
        self.listener.close()


@pytest.fixture
def hung() -> Iterator[HungServer]:
    with HungServer() as server:
        yield server


async def _actions(store: ActionStore) -> list[Action]:
    return await store.list_actions(ActionFilter(), limit=100)


async def _wait_for(store: ActionStore, predicate, timeout: float) -> list[Action]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        actions = await _actions(store)
        if predicate(actions) or time.monotonic() > deadline:
            return actions
        await asyncio.sleep(0.05)


def _of(actions: list[Action], provider: str) -> list[Action]:
    return [a for a in actions if a.provider == provider]


async def test_a_slow_attempt_is_retried_within_the_budget_then_fails_with_a_timeout(
    engine: AsyncEngine, admin: Principal
) -> None:
    """In process: each attempt is cut at the budget, counted as transient and retried until
    max_attempts; the provider without an override keeps the default budget and completes."""
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta", delay_seconds=5))
    entra = MemoryConnector(MemorySettings(provider="entra", delay_seconds=0.05))
    service = ActionService(store, {"okta": okta, "entra": entra})
    slow = await service.request("okta.suspend_user", "slow", "INC-15", admin)
    quick = await service.request("entra.suspend_user", "quick", "INC-15", admin)
    settings = EngineSettings(
        poll_interval_seconds=0.02, backoff_base_seconds=0.01, backoff_max_seconds=0.02, max_attempts=2,
        attempt_timeout_seconds=30, provider_attempt_timeout_seconds={"okta": 0.3},
    )  # fmt: skip
    await Worker(store, {"okta": okta, "entra": entra}, settings).run(until_drained=True)
    failed, done = await store.get(slow.id), await store.get(quick.id)
    assert failed is not None and done is not None
    assert (failed.status, failed.error_code, failed.attempts) == (ActionStatus.FAILED, "attempt_timeout", 2)
    assert failed.error_message is not None and failed.error_message.endswith("(gave up after 2 attempts)")
    assert [h.error_code for h in failed.history] == ["attempt_timeout", "attempt_timeout"]
    assert done.status is ActionStatus.COMPLETED
    assert (await entra.read_state(await entra.resolve_user("quick"))).enabled is False
    assert (await okta.read_state(await okta.resolve_user("slow"))).enabled is True  # never reached


@pytest.mark.slow
async def test_hung_provider_times_out_keeps_its_leases_and_spares_the_others(
    engine: AsyncEngine, database_url: str, tmp_path: Path, hung: HungServer
) -> None:
    state = tmp_path / "directory.db"
    okta = {
        "org_url": f"http://127.0.0.1:{hung.port}",
        "api_token": "00-fault-suite-token",
        "timeout_seconds": 120,  # per request: far beyond the engine's budget, so the budget ends it
        "retries": 0,
    }
    config = write_config(
        tmp_path / "clampdown.toml",
        database_url,
        providers={"okta": okta, "entra": memory_provider("entra", state, delay_seconds=0.05)},
        lease_seconds=1,
        poll_interval_seconds=0.05,
        max_attempts=1,
        provider_attempt_timeout_seconds={"okta": BUDGET},
    )
    token = bootstrap_admin(config)
    for action, users in (("okta.suspend_user", OKTA_USERS), ("entra.suspend_user", ENTRA_USERS)):
        listed = tmp_path / f"{action}.txt"
        listed.write_text("\n".join(users) + "\n")
        made = clampdown(config, "act", action, "--from-file", str(listed), "--reason", "INC-15", token=token)
        assert made.returncode == 0, made.stderr
    store = ActionStore(engine)
    worker = spawn_worker(config, "--until-drained")
    try:
        # The healthy provider's actions all complete while the hung provider's still run.
        meanwhile = await _wait_for(
            store,
            lambda acts: (
                all(a.status is ActionStatus.COMPLETED for a in _of(acts, "entra"))
                or any(a.status is ActionStatus.FAILED for a in _of(acts, "okta"))
            ),
            60,
        )
        assert all(a.status is ActionStatus.COMPLETED for a in _of(meanwhile, "entra")), meanwhile
        assert all(a.status is ActionStatus.RUNNING for a in _of(meanwhile, "okta")), meanwhile
        changes = memory_rows(state, "changes")
        assert sorted(row[2] for row in changes) == sorted(a.id for a in _of(meanwhile, "entra"))

        # While the requests hang the heartbeat renews the leases past the first expiry (claim + 1 s)
        # and no other claim happens: one attempt, one owner.
        def renewed(acts: list[Action]) -> bool:
            running = _of(acts, "okta")
            return all(
                a.status is ActionStatus.RUNNING
                and a.started_at is not None
                and a.available_at is not None
                and (a.available_at - a.started_at).total_seconds() > 2.0
                for a in running
            )

        hanging = await _wait_for(store, renewed, BUDGET + 30)
        assert renewed(hanging), [(a.status, a.started_at, a.available_at) for a in _of(hanging, "okta")]
        owners = {a.lease_owner for a in _of(hanging, "okta")}
        assert len(owners) == 1 and None not in owners
        owner = owners.pop()
        assert all(a.attempts == 1 for a in _of(hanging, "okta"))
        assert hung.accepted >= 1 and hung.received > 0  # the requests did reach it

        assert worker.wait(BUDGET + 60) == 0, worker.stderr.read() if worker.stderr else ""
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)

    done = await _actions(store)
    for action in _of(done, "okta"):
        assert action.status is ActionStatus.FAILED, action
        assert action.error_code == "attempt_timeout"
        assert action.error_message is not None
        assert f"timed out: okta did not finish okta.suspend_user within {BUDGET:g} s" in action.error_message
        assert "engine.provider_attempt_timeout_seconds.okta" in action.error_message
        assert action.attempts == 1  # never claimed a second time
        assert [(h.attempt, h.worker, h.error_code) for h in action.history] == [
            (1, owner, "attempt_timeout")
        ]
    assert all(a.status is ActionStatus.COMPLETED for a in _of(done, "entra"))
