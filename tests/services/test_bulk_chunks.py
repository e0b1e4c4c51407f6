"""A bulk is written in bounded chunks, each its own transaction (issue 15): the batch is visible
and claimable as it grows, and a keyed retry after a failure part way writes the rest once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import pytest

from clampdown.audit.chain import AuditLog
from clampdown.auth.principal import Principal
from clampdown.errors import Conflict
from clampdown.limits import BULK_CHUNK
from clampdown.model import Action, ActionFilter, ActionStatus
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore, NewAction
from clampdown.store.queue import ActionQueue
from tests.services.conftest import Services

ADMIN = Principal.from_roles("admin", frozenset({GLOBAL_ADMINISTRATOR}), {})
TARGETS = [f"user{n:05d}" for n in range(2 * BULK_CHUNK + 500)]  # three chunks, the last one short


class CrashingStore(ActionStore):
    """The action store, losing its connection before the second chunk is written; first it looks,
    from a connection of its own, at what the workers can see and claim by then."""

    def __init__(self, services: Services) -> None:
        super().__init__(services.engine, services.store.recorder)
        self.chunks: list[int] = []
        self.visible: dict[ActionStatus, int] = {}
        self.claimed: list[Action] = []

    async def enqueue(
        self, items: Sequence[NewAction], now: datetime, approval_deadline: datetime | None = None
    ) -> list[Action]:
        self.chunks.append(len(items))
        if len(self.chunks) == 2:
            batch = items[0].batch_id
            self.visible = await self.count_by_status(ActionFilter(batch_id=batch))
            claimed = await ActionQueue(self.engine).claim_next_actions("worker-1", 10, 60.0)
            self.claimed = [a for a, _ in claimed]
            raise ConnectionResetError("the database went away")
        return await super().enqueue(items, now, approval_deadline)


async def _requested(services: Services) -> Counter[str]:
    return Counter(
        [r["subject"] async for r in AuditLog(services.engine).rows() if r["event"] == "action.requested"]
    )


async def test_a_bulk_is_written_in_chunks_visible_as_it_grows_and_a_keyed_retry_writes_the_rest_once(
    services: Services,
) -> None:
    crashing = CrashingStore(services)
    flaky = ActionService(crashing, dict(services.directories), guardrails=services.actions.guardrails)
    with pytest.raises(ConnectionResetError):
        await flaky.request_bulk("okta.suspend_user", TARGETS, "incident 7", ADMIN, idempotency_key="inc-7")

    # The first chunk was committed before the second was begun: the workers saw and took it.
    assert crashing.chunks == [BULK_CHUNK, BULK_CHUNK]
    assert crashing.visible == {ActionStatus.QUEUED: BULK_CHUNK}
    assert [a.target for a in crashing.claimed] == TARGETS[:10]
    assert (await _requested(services)) == Counter(TARGETS[:BULK_CHUNK])

    # The same request again: the chunk written is found by its keys, the rest written once.
    bulk = await services.actions.request_bulk(
        "okta.suspend_user", TARGETS, "incident 7", ADMIN, idempotency_key="inc-7"
    )
    assert [a.target for a in bulk.actions] == TARGETS
    stored = await services.store.list_actions(ActionFilter(batch_id=bulk.batch_id), limit=10_000)
    assert sorted(a.target for a in stored) == TARGETS  # none twice
    assert {a.id for a in bulk.actions} == {a.id for a in stored}
    assert {a.batch_id for a in stored} == {bulk.batch_id}
    assert [a.status for a in bulk.actions[:10]] == [ActionStatus.RUNNING] * 10  # as the worker left them
    requested = await _requested(services)
    assert requested == Counter(TARGETS)  # one requested event per action, none twice
    assert (await AuditLog(services.engine).verify()).ok

    # And once more: nothing new.
    again = await services.actions.request_bulk(
        "okta.suspend_user", TARGETS, "incident 7", ADMIN, idempotency_key="inc-7"
    )
    assert [a.id for a in again.actions] == [a.id for a in bulk.actions]
    assert await _requested(services) == requested


async def test_a_key_reused_with_other_targets_after_a_failure_part_way_writes_nothing(
    services: Services,
) -> None:
    crashing = CrashingStore(services)
    flaky = ActionService(crashing, dict(services.directories))
    with pytest.raises(ConnectionResetError):
        await flaky.request_bulk("okta.suspend_user", TARGETS, "incident 8", ADMIN, idempotency_key="inc-8")
    others = [f"other{n:05d}" for n in range(BULK_CHUNK + 1)]  # none of them in the chunk written
    with pytest.raises(Conflict) as refused:
        await services.actions.request_bulk(
            "okta.suspend_user", others, "incident 8", ADMIN, idempotency_key="inc-8"
        )
    assert "different targets" in refused.value.message
    assert sum((await services.store.count_by_status(ActionFilter())).values()) == BULK_CHUNK


async def test_a_small_bulk_is_one_chunk(services: Services) -> None:
    bulk = await services.actions.request_bulk("okta.suspend_user", TARGETS[:3], "incident 9", ADMIN)
    assert [a.target for a in bulk.actions] == TARGETS[:3]
    assert {a.batch_id for a in bulk.actions} == {bulk.batch_id}
