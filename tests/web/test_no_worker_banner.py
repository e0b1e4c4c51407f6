"""The action center says at once when actions are queued and no live worker exists to take them."""

from __future__ import annotations

import httpx

from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.store.workers import WorkerRegistry
from tests.api.conftest import Server

PASSWORD = "correct horse battery"  # what Server.token gives its users
BANNER = 'data-testid="no-worker"'


async def test_banner_while_queued_actions_have_no_live_worker(server: Server) -> None:
    token = await server.token("ana", GLOBAL_ADMINISTRATOR)
    with httpx.Client(base_url=server.base, timeout=30) as client:
        client.post("/api/v1/session", json={"username": "ana", "password": PASSWORD}).raise_for_status()
        assert BANNER not in client.get("/actions").text  # nothing queued: nothing to say

        queued = httpx.post(
            f"{server.base}/api/v1/actions", headers={"Authorization": f"Bearer {token}"},
            json={"type": "okta.suspend_user", "target": "alice", "reason": "INC-8"}, timeout=30,
        )  # fmt: skip
        assert queued.status_code == 202, queued.text
        page = client.get("/actions").text
        assert BANNER in page
        assert (
            "1 queued: no worker is running: start `clampdown serve` (SQLite) or `clampdown worker`" in page
        )
        assert BANNER in client.get("/actions/rows").text  # the live part the page polls says it too

        await WorkerRegistry(server.engine).register("here:9:dddddd", "here", 9, "standalone", 600)
        assert BANNER not in client.get("/actions/rows").text
