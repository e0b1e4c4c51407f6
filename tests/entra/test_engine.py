"""The engine's real worker driving the Entra connector against the emulator: a bulk suspend
through `$batch`, per-item failures, and an undo that restores what was read before."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import EngineSettings
from clampdown.connectors.entra import EntraConnector
from clampdown.engine.worker import Worker
from clampdown.model import ActionStatus
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown_lab.graph_emulator import Emulator
from clampdown_lab.graph_emulator.tenant import UserRecord, object_id

FAST = EngineSettings(poll_interval_seconds=0.05, backoff_base_seconds=0.01, backoff_max_seconds=0.05)


async def test_bulk_suspend_and_undo_through_the_worker(
    engine: AsyncEngine, admin: Principal, connector: EntraConnector, emulator: Emulator
) -> None:
    upns = []
    for n in range(90):
        upn = f"engine{n:03d}@lab.example.test"
        emulator.tenant.add_user(
            UserRecord(id=object_id("user", upn), userPrincipalName=upn, displayName=upn)
        )
        upns.append(upn)
    emulator.tenant.users[object_id("user", upns[0])].accountEnabled = False  # already suspended
    store = ActionStore(engine)
    service = ActionService(store, {"entra": connector})
    bulk = await service.request_bulk(
        "entra.suspend_user", [*upns, "nobody@lab.example.test"], "phish", admin
    )
    await Worker(store, {"entra": connector}, FAST).run(until_drained=True)
    done = {a.target: a for a in await service.wait([a.id for a in bulk.actions], timeout=5)}

    assert all(not u.accountEnabled for u in emulator.tenant.users.values() if u.userPrincipalName in upns)
    assert done[upns[0]].status is ActionStatus.COMPLETED and done[upns[0]].changed is False
    assert all(done[u].status is ActionStatus.COMPLETED and done[u].changed for u in upns[1:])
    missing = done["nobody@lab.example.test"]
    assert missing.status is ActionStatus.FAILED and "nobody@lab.example.test" in (
        missing.error_message or ""
    )
    assert emulator.counters.batch_requests >= 3  # writes went in $batches, not one request per user

    undo = await service.undo(done[upns[5]].id, admin)
    await Worker(store, {"entra": connector}, FAST).run(until_drained=True)
    (undone,) = await service.wait([undo.id], timeout=5)
    assert undone.status is ActionStatus.COMPLETED
    assert emulator.tenant.users[object_id("user", upns[5])].accountEnabled is True
