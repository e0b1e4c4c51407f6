"""Clampdown as a Shared Signals transmitter over a real `clampdown serve`: its metadata and JWKS, the
stream management API (SSF 1.0 section 8.1) with receivers' API tokens, each scoped to its own
streams, verification and status events queued to the outbox, subjects changing who receives, the
declared streams written at startup, and every change audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from clampdown.audit.recorder import EventRecorder
from clampdown.audit.ssf_out import receiving_streams_in
from clampdown.config import SsfPushStreamSettings, SsfTransmitterSettings
from clampdown.db.tables import audit_log, ssf_outbox, ssf_stream_subjects, ssf_streams
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR, SECURITY_READER
from clampdown.secevents import (
    ACCOUNT_DISABLED,
    CONTAINMENT_EVENTS,
    POLL,
    PUSH,
    SESSION_REVOKED,
    STREAM_UPDATED,
    SUPPORTED_EVENTS,
    VERIFICATION,
    TransmitterKeys,
    load_key,
)
from clampdown.signals.declared import sync_declared
from clampdown.signals.streams import SignalStreams
from tests.api.conftest import server_factory
from tests.signals.transmitter_server import (
    DECLARED_AUDIENCE,
    DECLARED_ENDPOINT,
    VERIFY_INTERVAL,
    Transmitting,
    transmitting,
)

__all__ = ["server_factory", "transmitting"]  # the fixtures

STREAMS = "/api/v1/ssf/streams"
RECEIVER = "https://receiver.example.test/ssf/events"
ALICE = {"format": "email", "email": "alice@memory.test"}


def _push_stream(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "delivery": {"method": PUSH, "endpoint_url": RECEIVER, "authorization_header": "Bearer s3cret-push"},
        "events_requested": [SESSION_REVOKED, ACCOUNT_DISABLED, "https://example.test/event-type/unknown"],
        "description": "the receiver's stream",
    }
    body.update(changes)
    return body


async def _receiving(t: Transmitting, event_type: str, keys: set[str], stream_id: str) -> list[str]:
    """[stream_id] if the stream is to receive an event of this type about the subject, else []."""
    settings = SsfTransmitterSettings.model_validate(t.config["ssf"]["transmitter"])
    async with t.engine.connect() as conn:
        found = await receiving_streams_in(conn, settings, event_type, keys, [stream_id])
    return [s["stream_id"] for s in found]


def _refused(response: httpx.Response, words: str) -> None:
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"], response.json()


async def test_metadata_and_jwks_are_published_and_an_outbox_set_verifies_against_them(
    transmitting: Transmitting,
) -> None:
    t = transmitting
    metadata = httpx.get(f"{t.base}/.well-known/ssf-configuration").json()
    api = f"{t.issuer}/api/v1/ssf"
    assert metadata == {
        "spec_version": "1_0",
        "issuer": t.issuer,
        "jwks_uri": f"{api}/jwks",
        "delivery_methods_supported": [PUSH, POLL],
        "configuration_endpoint": f"{api}/streams",
        "status_endpoint": f"{api}/streams/status",
        "add_subject_endpoint": f"{api}/streams/subjects:add",
        "remove_subject_endpoint": f"{api}/streams/subjects:remove",
        "verification_endpoint": f"{api}/streams/verify",
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
        "default_subjects": "ALL",
    }
    assert httpx.get(f"{t.base}/.well-known/ssf-configuration/elsewhere").status_code == 404
    jwks = httpx.get(metadata["jwks_uri"]).json()
    key = load_key(str(t.key_file))
    assert [k["kid"] for k in jwks["keys"]] == [key.kid]
    assert all("d" not in k for k in jwks["keys"])  # public keys only

    token = await t.token("receiver", SECURITY_ADMINISTRATOR)
    poll = {"delivery": {"method": POLL}, "aud": "https://receiver.example.test/aud"}  # not pushed meanwhile
    created = t.call("POST", STREAMS, token, json=poll)
    assert created.status_code == 201, created.text
    stream_id = created.json()["stream_id"]
    assert (
        t.call(
            "POST", f"{STREAMS}/verify", token, json={"stream_id": stream_id, "state": "xyz-1"}
        ).status_code
        == 204
    )
    [row] = await t.outbox(stream_id)
    header = jwt.get_unverified_header(row["token"])
    assert header == {"alg": "ES256", "typ": "secevent+jwt", "kid": key.kid}
    public = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    claims = jwt.decode(
        row["token"],
        public,
        algorithms=["ES256"],
        audience="https://receiver.example.test/aud",
        issuer=t.issuer,
    )
    assert claims["sub_id"] == {"format": "opaque", "id": stream_id}
    assert claims["events"] == {VERIFICATION: {"state": "xyz-1"}}
    assert claims["jti"] == row["jti"] and row["status"] == "pending"


async def test_a_stream_s_lifecycle_over_the_api_each_change_audited(transmitting: Transmitting) -> None:
    t = transmitting
    token = await t.token("receiver", SECURITY_ADMINISTRATOR)
    created = t.call("POST", STREAMS, token, json=_push_stream())
    assert created.status_code == 201, created.text
    config = created.json()
    stream_id = config["stream_id"]
    assert config == {
        "stream_id": stream_id,
        "iss": t.issuer,
        "aud": "https://receiver.example.test",  # the push endpoint's origin
        "events_supported": list(SUPPORTED_EVENTS),
        "events_requested": [SESSION_REVOKED, ACCOUNT_DISABLED, "https://example.test/event-type/unknown"],
        "events_delivered": [SESSION_REVOKED, ACCOUNT_DISABLED],
        "delivery": {"method": PUSH, "endpoint_url": RECEIVER},  # never the authorization header
        "min_verification_interval": VERIFY_INTERVAL,
        "description": "the receiver's stream",
    }
    assert "s3cret" not in created.text
    assert t.call("GET", STREAMS, token, params={"stream_id": stream_id}).json() == config
    assert t.call("GET", STREAMS, token).json() == [config]  # the declared stream is not the receiver's

    patched = t.call(
        "PATCH", STREAMS, token, json={"stream_id": stream_id, "events_requested": [ACCOUNT_DISABLED]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events_delivered"] == [ACCOUNT_DISABLED]
    assert patched.json()["description"] == "the receiver's stream"  # not given: kept
    assert await _receiving(t, SESSION_REVOKED, {"email:alice@memory.test"}, stream_id) == []
    replaced = t.call(
        "PUT",
        STREAMS,
        token,
        json={
            **config,
            "delivery": {"method": POLL},
            "description": None,
            "events_requested": [SESSION_REVOKED],
        },
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["delivery"] == {
        "method": POLL,
        "endpoint_url": f"{t.issuer}{STREAMS}/{stream_id}/poll",
    }
    assert "description" not in replaced.json()
    async with t.engine.connect() as conn:
        header = await conn.scalar(
            select(ssf_streams.c.authorization_header).where(ssf_streams.c.stream_id == stream_id)
        )
    assert header is None  # a poll stream keeps no push header

    # Status: paused keeps receiving (its SETs wait), disabled receives nothing; each change but to
    # disabled queues stream-updated.
    assert t.call("GET", f"{STREAMS}/status", token, params={"stream_id": stream_id}).json() == {
        "stream_id": stream_id,
        "status": "enabled",
    }
    paused = t.call(
        "POST",
        f"{STREAMS}/status",
        token,
        json={"stream_id": stream_id, "status": "paused", "reason": "maintenance"},
    )
    assert paused.json() == {"stream_id": stream_id, "status": "paused", "reason": "maintenance"}
    assert await _receiving(t, SESSION_REVOKED, {"email:alice@memory.test"}, stream_id) == [stream_id]
    [updated] = await t.outbox(stream_id)
    assert updated["event_types"] == [STREAM_UPDATED]
    assert jwt.decode(updated["token"], options={"verify_signature": False})["events"] == {
        STREAM_UPDATED: {"status": "paused", "reason": "maintenance"}
    }
    t.call("POST", f"{STREAMS}/status", token, json={"stream_id": stream_id, "status": "disabled"})
    assert await _receiving(t, SESSION_REVOKED, {"email:alice@memory.test"}, stream_id) == []
    assert [(r["status"], r["last_error"]) for r in await t.outbox(stream_id)] == [
        ("failed", "dropped: the stream was disabled")
    ]
    t.call("POST", f"{STREAMS}/status", token, json={"stream_id": stream_id, "status": "enabled"})
    assert [r["status"] for r in await t.outbox(stream_id)] == ["failed", "pending"]

    # Subjects: under ALL, a removed subject receives nothing until added again.
    removed = t.call(
        "POST", f"{STREAMS}/subjects:remove", token, json={"stream_id": stream_id, "subject": ALICE}
    )
    assert removed.status_code == 204, removed.text
    assert await _receiving(t, SESSION_REVOKED, {"email:alice@memory.test"}, stream_id) == []
    assert await _receiving(t, SESSION_REVOKED, {"email:bob@memory.test"}, stream_id) == [stream_id]
    added = t.call(
        "POST",
        f"{STREAMS}/subjects:add",
        token,
        json={"stream_id": stream_id, "subject": {**ALICE, "email": "Alice@Memory.Test"}, "verified": True},
    )
    assert added.status_code == 200, added.text
    assert await _receiving(t, SESSION_REVOKED, {"email:alice@memory.test"}, stream_id) == [stream_id]

    assert t.call("DELETE", STREAMS, token, params={"stream_id": stream_id}).status_code == 204
    assert t.call("GET", STREAMS, token, params={"stream_id": stream_id}).status_code == 404
    async with t.engine.connect() as conn:
        for table in (ssf_streams, ssf_stream_subjects, ssf_outbox):
            left = await conn.scalar(
                select(func.count()).select_from(table).where(table.c.stream_id == stream_id)
            )
            assert left == 0, table.name

    audited = [
        (e, actor, d.get("status") or d.get("change") or d.get("changed"))
        for e, actor, d in await t.audit()
        if d["stream_id"] == stream_id
    ]
    assert audited == [
        ("ssf.stream_created", "receiver", None),
        ("ssf.stream_updated", "receiver", ["events_requested"]),
        (
            "ssf.stream_updated",
            "receiver",
            ["authorization_header", "delivery_method", "description", "endpoint_url", "events_requested"],
        ),
        ("ssf.stream_status_changed", "receiver", "paused"),
        ("ssf.stream_status_changed", "receiver", "disabled"),
        ("ssf.stream_status_changed", "receiver", "enabled"),
        ("ssf.stream_subjects_changed", "receiver", "removed"),
        ("ssf.stream_subjects_changed", "receiver", "added"),
        ("ssf.stream_deleted", "receiver", None),
    ]
    assert all("s3cret" not in str(d) for _, _, d in await t.audit())


async def test_a_receiver_sees_only_its_own_streams_and_needs_the_permission(
    transmitting: Transmitting,
) -> None:
    t = transmitting
    mine = await t.token("receiver", SECURITY_ADMINISTRATOR)
    other = await t.token("other-receiver", GLOBAL_ADMINISTRATOR)
    reader = await t.token("reader", SECURITY_READER)
    stream_id = t.call("POST", STREAMS, mine, json=_push_stream()).json()["stream_id"]
    named = {"stream_id": stream_id}
    attempts = [
        ("GET", STREAMS, {"params": named}),
        ("PATCH", STREAMS, {"json": {**named, "description": "taken"}}),
        ("PUT", STREAMS, {"json": {**named, **_push_stream()}}),
        ("DELETE", STREAMS, {"params": named}),
        ("GET", f"{STREAMS}/status", {"params": named}),
        ("POST", f"{STREAMS}/status", {"json": {**named, "status": "disabled"}}),
        ("POST", f"{STREAMS}/subjects:add", {"json": {**named, "subject": ALICE}}),
        ("POST", f"{STREAMS}/subjects:remove", {"json": {**named, "subject": ALICE}}),
        ("POST", f"{STREAMS}/verify", {"json": named}),
        ("POST", f"{STREAMS}/{stream_id}/poll", {"json": {}}),
    ]
    for method, path, kwargs in attempts:
        assert t.call(method, path, other, **kwargs).status_code == 404, (method, path)
        assert t.call(method, path, reader, **kwargs).status_code == 403, (method, path)
        assert t.call(method, path, None, **kwargs).status_code == 401, (method, path)
    assert t.call("GET", STREAMS, other).json() == []
    # The declared stream is nobody's through the API.
    assert t.call("GET", STREAMS, other, params={"stream_id": "okta"}).status_code == 404
    assert (
        t.call("POST", f"{STREAMS}/status", other, json={"stream_id": "okta", "status": "paused"}).status_code
        == 404
    )
    # Nothing changed; the reader's attempts are audited as denials.
    assert t.call("GET", STREAMS, mine, params=named).json()["description"] == "the receiver's stream"
    assert await t.outbox(stream_id) == []
    denials = [d["attempted"] for _, actor, d in await t.audit("access.denied") if actor == "reader"]
    assert "ssf.streams.delete" in denials and len(denials) == len(attempts)


async def test_bad_requests_answer_400_naming_what_is_wrong(transmitting: Transmitting) -> None:
    t = transmitting
    token = await t.token("receiver", SECURITY_ADMINISTRATOR)
    _refused(
        t.call("POST", STREAMS, token, json=_push_stream(delivery={"method": "urn:example:carrier-pigeon"})),
        "delivery.method",
    )
    _refused(
        t.call("POST", STREAMS, token, json=_push_stream(delivery={"method": PUSH})), "delivery.endpoint_url"
    )
    _refused(
        t.call(
            "POST", STREAMS, token, json=_push_stream(delivery={"method": PUSH, "endpoint_url": "ftp://x"})
        ),
        "is not an http(s) address",
    )
    header = {"method": PUSH, "endpoint_url": RECEIVER, "authorization_header": "Bearer a\r\nX-Evil: 1"}
    _refused(t.call("POST", STREAMS, token, json=_push_stream(delivery=header)), "one line")
    _refused(t.call("POST", STREAMS, token, json={"events_requested": [SESSION_REVOKED]}), "delivery")
    _refused(t.call("POST", STREAMS, token, json=_push_stream(iss="https://someone-else.test")), "iss")
    _refused(
        t.call("POST", STREAMS, token, json=_push_stream(events_requested=["x"] * 51)), "events_requested"
    )
    _refused(
        t.call("POST", STREAMS, token, content=b"{not json", headers={"Content-Type": "application/json"}),
        "JSON",
    )
    _refused(t.call("POST", STREAMS, token, json=[1, 2]), "body")
    stream_id = t.call("POST", STREAMS, token, json=_push_stream()).json()["stream_id"]
    _refused(
        t.call("PATCH", STREAMS, token, json={"stream_id": stream_id, "aud": "https://mine.test"}), "aud"
    )
    _refused(t.call("PATCH", STREAMS, token, json={"description": "which?"}), "stream_id")
    _refused(t.call("PUT", STREAMS, token, json={"stream_id": stream_id}), "delivery")
    _refused(
        t.call("POST", f"{STREAMS}/status", token, json={"stream_id": stream_id, "status": "asleep"}),
        "status",
    )
    for subject in (
        {"format": "phone_number", "phone_number": "+1 555"},
        {"format": "email"},
        "alice",
        {"format": "email", "email": ""},
    ):
        _refused(
            t.call(
                "POST", f"{STREAMS}/subjects:add", token, json={"stream_id": stream_id, "subject": subject}
            ),
            "subject",
        )
    _refused(t.call("POST", f"{STREAMS}/{stream_id}/poll", token, json={}), "push")
    _refused(t.call("POST", f"{STREAMS}/{stream_id}/poll", token, json={"maxEvents": -1}), "maxEvents")
    for _ in range(9):  # ten streams, the most one receiver holds
        assert t.call("POST", STREAMS, token, json=_push_stream()).status_code == 201
    _refused(t.call("POST", STREAMS, token, json=_push_stream()), "the most one receiver may")


async def test_verification_is_queued_with_its_state_and_refused_when_asked_too_soon(
    transmitting: Transmitting,
) -> None:
    t = transmitting
    token = await t.token("receiver", SECURITY_ADMINISTRATOR)
    stream_id = t.call("POST", STREAMS, token, json={"delivery": {"method": POLL}}).json()["stream_id"]
    assert (
        t.call("POST", f"{STREAMS}/verify", token, json={"stream_id": stream_id, "state": "one"}).status_code
        == 204
    )
    again = t.call("POST", f"{STREAMS}/verify", token, json={"stream_id": stream_id, "state": "two"})
    assert again.status_code == 429, again.text
    assert 1 <= int(again.headers["Retry-After"]) <= VERIFY_INTERVAL
    rows = await t.outbox(stream_id)
    assert [jwt.decode(r["token"], options={"verify_signature": False})["events"] for r in rows] == [
        {VERIFICATION: {"state": "one"}}
    ]
    claims = jwt.decode(rows[0]["token"], options={"verify_signature": False})
    assert claims["aud"] == "receiver"  # a poll stream's audience: its owner, who polls it
    verified = [d for e, _, d in await t.audit() if e == "ssf.stream_verification_requested"]
    assert [(d["stream_id"], d["state"], d["jti"]) for d in verified] == [(stream_id, "one", rows[0]["jti"])]


async def test_a_transmitter_not_configured_answers_404(server_factory: Any) -> None:
    server = server_factory()
    token = await server.token("receiver", GLOBAL_ADMINISTRATOR)
    headers = {"Authorization": f"Bearer {token}"}
    for path in (
        "/.well-known/ssf-configuration",
        "/api/v1/ssf/jwks",
        STREAMS,
        f"{STREAMS}/status?stream_id=x",
    ):
        assert httpx.get(f"{server.base}{path}", headers=headers).status_code == 404, path
    assert httpx.post(f"{server.base}{STREAMS}", json=_push_stream(), headers=headers).status_code == 404


async def test_the_declared_stream_is_written_at_startup_and_synced_again_quietly(
    transmitting: Transmitting, engine: AsyncEngine, tmp_path: Path
) -> None:
    t = transmitting
    async with engine.connect() as conn:
        row = (
            (await conn.execute(select(ssf_streams).where(ssf_streams.c.stream_id == "okta")))
            .mappings()
            .one()
        )
    assert (row["owner"], row["endpoint_url"], row["audience"], row["status"]) == (
        "config:okta",
        DECLARED_ENDPOINT,
        [DECLARED_AUDIENCE],
        "enabled",
    )
    assert row["events_requested"] == list(CONTAINMENT_EVENTS)
    settings = SsfTransmitterSettings.model_validate(t.config["ssf"]["transmitter"])
    keys = TransmitterKeys.load(settings.signing_key_file)
    service = SignalStreams(engine, settings, keys, EventRecorder())
    assert await sync_declared(service) == []  # as the server left it: nothing written, nothing audited
    await service.set_declared_status("okta", "paused", "receiver down", "ops")
    changed = settings.model_copy(
        update={
            "streams": {
                "okta": SsfPushStreamSettings(
                    endpoint_url=DECLARED_ENDPOINT + "/v2",
                    audience=DECLARED_AUDIENCE,
                    events=[ACCOUNT_DISABLED],
                ),
                "second": SsfPushStreamSettings(
                    endpoint_url="https://second.test/events", audience="https://second.test"
                ),
            }
        }
    )
    service = SignalStreams(engine, changed, keys, EventRecorder())
    assert await sync_declared(service) == ["okta", "second"]
    async with engine.connect() as conn:
        rows = {r["stream_id"]: r for r in (await conn.execute(select(ssf_streams))).mappings()}
    assert (rows["okta"]["endpoint_url"], rows["okta"]["events_requested"], rows["okta"]["status"]) == (
        DECLARED_ENDPOINT + "/v2",
        [ACCOUNT_DISABLED],
        "paused",  # its status kept
    )
    assert await sync_declared(service) == []
    service = SignalStreams(engine, changed.model_copy(update={"streams": {}}), keys, EventRecorder())
    assert sorted(await sync_declared(service)) == ["okta", "second"]
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(ssf_streams)) == 0
        events = (
            await conn.execute(
                select(audit_log.c.event, audit_log.c.subject)
                .where(audit_log.c.actor == "config")
                .order_by(audit_log.c.seq)
            )
        ).all()
    assert [tuple(e) for e in events] == [
        ("ssf.stream_created", "okta"),
        ("ssf.stream_updated", "okta"),
        ("ssf.stream_created", "second"),
        ("ssf.stream_deleted", "okta"),
        ("ssf.stream_deleted", "second"),
    ]


def test_keygen_writes_a_key_and_prints_its_kid_and_never_overwrites_one(tmp_path: Path) -> None:
    from clampdown.cli import app

    path = tmp_path / "keys" / "ssf.pem"
    made = CliRunner().invoke(app, ["ssf", "keygen", str(path)])
    assert made.exit_code == 0, made.output
    assert made.output.strip() == load_key(str(path)).kid
    assert path.stat().st_mode & 0o777 == 0o600
    again = CliRunner().invoke(app, ["ssf", "keygen", str(path)])
    assert again.exit_code == 2 and "never overwritten" in again.output


async def test_ssf_streams_lists_every_stream_for_the_operator(
    transmitting: Transmitting, tmp_path: Path
) -> None:
    t = transmitting
    receiver = await t.token("receiver", SECURITY_ADMINISTRATOR)
    stream_id = t.call("POST", STREAMS, receiver, json=_push_stream()).json()["stream_id"]
    operator = await t.token("operator", GLOBAL_ADMINISTRATOR)
    reader = await t.token("reader", SECURITY_READER)

    def listing(token: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CLAMPDOWN_CONFIG": str(tmp_path / "clampdown.toml"), "CLAMPDOWN_TOKEN": token}
        command = [sys.executable, "-m", "clampdown", "ssf", "streams", "--output", "json"]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    listed = listing(operator)
    assert listed.returncode == 0, listed.stderr
    shown = {s["stream_id"]: s for s in json.loads(listed.stdout)}
    assert set(shown) == {"okta", stream_id}
    assert (shown["okta"]["owner"], shown["okta"]["delivery"]) == ("config:okta", "push")
    assert (shown[stream_id]["owner"], shown[stream_id]["status"]) == ("receiver", "enabled")
    assert "s3cret" not in listed.stdout and "authorization_header" not in listed.stdout
    assert shown[stream_id]["has_authorization"] is True  # the StreamView: held, never shown
    assert shown["okta"]["events_delivered"] == shown["okta"]["events_requested"]
    refused = listing(reader)
    assert refused.returncode == 7 and "settings:manage" in refused.stderr
