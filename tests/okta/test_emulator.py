"""Emulator behaviours the connector tests do not reach: async deactivation, 411, System Log paging."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from tests.okta.org import API_TOKEN, Org

ALICE = "alice.martin@lab.example.test"
AUTH = {"Authorization": f"SSWS {API_TOKEN}"}


async def test_async_deactivation_shows_transitioning_status(org: Org) -> None:
    user = org.ids[ALICE]
    async with httpx.AsyncClient(base_url=org.url, headers=AUTH) as client:
        started = await client.post(
            f"/api/v1/users/{user}/lifecycle/deactivate", headers={"Prefer": "respond-async"}
        )
        assert started.status_code == 200
        during = (await client.get(f"/api/v1/users/{user}")).json()
        assert (during["status"], during["transitioningToStatus"]) == ("ACTIVE", "DEPROVISIONED")
        await asyncio.sleep(0.3)
        after = (await client.get(f"/api/v1/users/{user}")).json()
        assert after["status"] == "DEPROVISIONED" and "transitioningToStatus" not in after
        # A real org answers 404 to deactivating a DEPROVISIONED user, though it still reads it.
        again = await client.post(f"/api/v1/users/{user}/lifecycle/deactivate")
        assert (again.status_code, again.json()["errorCode"]) == (404, "E0000007")
        assert (await client.get(f"/api/v1/users/{user}")).status_code == 200


async def test_bodiless_post_without_content_length_is_411(org: Org) -> None:
    parts = urlsplit(org.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(
        f"POST /api/v1/users/{org.ids[ALICE]}/lifecycle/suspend HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Authorization: SSWS {API_TOKEN}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 411")
    assert org.user(ALICE).status == "ACTIVE"


async def test_system_log_time_bounds_order_and_polling(org: Org) -> None:
    async with httpx.AsyncClient(base_url=org.url, headers=AUTH) as client:
        for login in list(org.ids)[:3]:
            await client.post(f"/api/v1/users/{org.ids[login]}/lifecycle/suspend")
        newest_first = (await client.get("/api/v1/logs", params={"sortOrder": "DESCENDING"})).json()
        assert [e["target"][0]["alternateId"] for e in newest_first] == list(org.ids)[:3][::-1]
        first = await client.get("/api/v1/logs", params={"limit": "2"})
        assert len(first.json()) == 2
        rest = await client.get(first.links["next"]["url"])
        assert [e["uuid"] for e in rest.json()] == [newest_first[0]["uuid"]]
        since = newest_first[0]["published"]
        bounded = (await client.get("/api/v1/logs", params={"since": since})).json()
        assert newest_first[0]["uuid"] in {e["uuid"] for e in bounded}
        later = await client.get("/api/v1/logs", params={"since": "2099-01-01T00:00:00.000Z"})
        assert later.json() == []
        by_target = await client.get("/api/v1/logs", params={"filter": f'target.id eq "{org.ids[ALICE]}"'})
        assert [e["eventType"] for e in by_target.json()] == ["user.lifecycle.suspend"]
