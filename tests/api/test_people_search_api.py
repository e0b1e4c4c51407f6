"""GET /api/v1/users/search and `clampdown users search` over a real `clampdown serve` and the real
command, on memory directories that list their people (the real directories: tests/web/test_search.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_READER
from tests.api.conftest import Server, start_server
from tests.lab_config import clampdown, memory_provider

PEOPLE = ["alice.martin", "bob.nguyen", "marta.kim"]


@pytest.fixture
def served(engine: AsyncEngine, database_url: str, tmp_path: Path) -> Iterator[Server]:
    providers = {p: memory_provider(p, tmp_path / f"{p}.db", users=PEOPLE) for p in ("ad", "entra", "okta")}
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps({"database": {"url": database_url}, "providers": providers}))
    proc, base = start_server(config)
    yield Server(base, config, engine, tmp_path)
    proc.terminate()
    proc.wait(15)


async def test_people_from_a_fragment_merged_and_ranked(served: Server) -> None:
    token = await served.token("reader", SECURITY_READER)
    async with httpx.AsyncClient(base_url=served.base, headers={"Authorization": f"Bearer {token}"}) as api:
        answer = await api.get("/api/v1/users/search", params={"query": "mart"})
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert [(p["title"], p["rank"]) for p in found["people"]] == [
            ("Alice.Martin", "prefix"), ("Marta.Kim", "prefix")
        ]  # fmt: skip
        alice = next(p for p in found["people"] if p["reference"] == "alice.martin@memory.test")
        assert sorted(a["account"]["instance"] for a in alice["accounts"]) == ["ad", "entra", "okta"]
        assert found["searched"] == ["ad", "entra", "okta"] and found["still_answering"] == []
        exact = (await api.get("/api/v1/users/search", params={"query": "marta.kim"})).json()
        assert [(p["title"], p["rank"]) for p in exact["people"]] == [("Marta.Kim", "exact")]
        paged = (await api.get("/api/v1/users/search", params={"query": "mart", "page_size": 1})).json()
        assert len(paged["people"]) == 1 and paged["more"] and paged["total"] == 2

        short = await api.get("/api/v1/users/search", params={"query": "m"})
        assert short.status_code == 422 and "query" in short.text
        odd = await api.get("/api/v1/users/search", params={"query": "m*rt"})
        assert odd.status_code == 422
        assert "cannot be searched for" in odd.json()["error"]["message"]
        deep = await api.get("/api/v1/users/search", params={"query": "mart", "page": 99})
        assert deep.status_code == 422


async def test_the_command_searches_directory_people(served: Server) -> None:
    token = await served.token("analyst", GLOBAL_ADMINISTRATOR)
    done = clampdown(served.config, "users", "search", "nguyen", "--json", token=token)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [p["reference"] for p in found["people"]] == ["bob.nguyen@memory.test"]
    table = clampdown(served.config, "users", "search", "nguyen", token=token)
    assert "bob.nguyen@memory.test" in table.stdout and "Active Directory" not in table.stderr
    refused = clampdown(served.config, "users", "search", "ngu(yen", token=token)
    assert refused.returncode != 0 and "cannot be searched for" in refused.stderr
