"""AD actions through the whole engine: inside the delegated OU `completed`, outside `failed`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clampdown.auth.principal import Principal
from clampdown.catalog import SECURITY_ADMINISTRATOR
from clampdown.config import EngineSettings
from clampdown.connectors.ad import ADConnector
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.engine.worker import Worker
from clampdown.model import ActionStatus
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown_lab.samba.seed import OTHER_OU
from tests.ad.ad_checks import ScratchUser, read_int

pytestmark = pytest.mark.samba

FAST = EngineSettings(poll_interval_seconds=0.05, backoff_base_seconds=0.01, backoff_max_seconds=0.05)
ANALYST = Principal.from_roles("analyst", frozenset({SECURITY_ADMINISTRATOR}), {})


async def test_bulk_disable_and_undo_through_the_engine(
    ad: ADConnector, admin: Any, make_user: Callable[..., ScratchUser], tmp_path: Path
) -> None:
    db = create_engine(f"sqlite:///{tmp_path / 'clampdown.db'}")
    await upgrade(db)
    store = ActionStore(db)
    service = ActionService(store, {"ad": ad})
    inside, outside = make_user(), make_user(ou=OTHER_OU)
    try:
        bulk = await service.request_bulk(
            "ad.disable_user", [inside.sam, outside.upn, "nobody.here"], "phishing", ANALYST
        )
        await Worker(store, {"ad": ad}, FAST).run(until_drained=True)
        done = {a.target: a for a in await service.wait([a.id for a in bulk.actions], timeout=10)}

        assert done[inside.sam].status is ActionStatus.COMPLETED and done[inside.sam].changed
        assert done[inside.sam].state_before and done[inside.sam].state_before.enabled is True
        assert read_int(admin, inside.dn, "userAccountControl") == 0x202
        failed = done[outside.upn]
        assert failed.status is ActionStatus.FAILED
        assert f"the action account lacks rights on {outside.dn}" in (failed.error_message or "")
        assert read_int(admin, outside.dn, "userAccountControl") == 0x200
        assert done["nobody.here"].status is ActionStatus.FAILED

        undo = await service.undo(done[inside.sam].id, ANALYST)
        await Worker(store, {"ad": ad}, FAST).run(until_drained=True)
        (finished,) = await service.wait([undo.id], timeout=10)
        assert finished.status is ActionStatus.COMPLETED and finished.type == "ad.enable_user"
        assert read_int(admin, inside.dn, "userAccountControl") == 0x200
    finally:
        await db.dispose()
