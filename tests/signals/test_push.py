"""Push delivery (RFC 8935) to a real `clampdown serve`: SETs signed here, the transmitter's JWKS
served over HTTP. Only the valid SETs are accepted (202); each refusal answers 400 with the RFC 8935
section 2.4 error code; both are audited; the accepted ones are rows of SecuritySignals, the
subject resolved to a person through strong anchors, or marked unresolved."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import tomli_w
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.service import AuthService
from clampdown.db.tables import audit_log, ssf_received_jtis
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_READER
from clampdown.store.auth import AuthStore
from tests.api.conftest import start_server
from tests.lab_config import memory_provider
from tests.signals.conftest import AUDIENCE, SESSION_REVOKED, Transmitter

BEARER = "partner-stream-bearer-token-0123456789"
OTHER_BEARER = "other-stream-bearer-token-9876543210"
PEOPLE = ["alice", "bob"]
SET_TYPE = {"Content-Type": "application/secevent+jwt"}


@pytest.fixture
def served(engine: AsyncEngine, database_url: str, tmp_path: Path, transmitter: Transmitter) -> Iterator[str]:
    providers = {p: memory_provider(p, tmp_path / f"{p}.db", users=PEOPLE) for p in ("ad", "entra", "okta")}
    receivers = {
        "partner": {"issuer": transmitter.issuer, "audience": AUDIENCE, "bearer": BEARER},
        "other": {"issuer": "https://other.test/", "audience": AUDIENCE, "bearer": OTHER_BEARER},
    }
    data = {
        "database": {"url": database_url},
        "server": {"embedded_worker": False},
        "providers": providers,
        "ssf": {"receivers": receivers},
    }
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data))
    proc: subprocess.Popen[bytes]
    proc, base = start_server(config)
    yield base
    proc.terminate()
    proc.wait(15)


def _push(base: str, token: str, bearer: str | None = BEARER, headers: dict[str, str] | None = None,
          receiver: str = "partner") -> httpx.Response:  # fmt: skip
    sent = {**SET_TYPE, **(headers or {})}
    if bearer is not None:
        sent["Authorization"] = f"Bearer {bearer}"
    return httpx.post(f"{base}/api/v1/ssf/receivers/{receiver}/events", content=token, headers=sent)


def _refused(response: httpx.Response, err: str) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["err"] == err, body
    assert body["description"], body
    return body


async def test_only_valid_sets_are_accepted_each_refusal_answers_its_rfc8935_code_and_is_audited(
    served: str, engine: AsyncEngine, transmitter: Transmitter
) -> None:
    t = transmitter
    valid = t.claims()
    accepted = _push(served, t.sign(valid))
    assert accepted.status_code == 202, accepted.text
    assert accepted.content == b""
    assert t.fetches == ["/.well-known/ssf-configuration/issuer", "/jwks.json"]

    # Expired: issued 10 minutes ago, past the default 5-minute window.
    expired = _refused(_push(served, t.sign(t.claims(iat=int(time.time()) - 600))), "invalid_request")
    assert "outside the accepted window" in expired["description"]
    # Replayed: the valid SET again, same jti.
    replayed = _refused(_push(served, t.sign(valid)), "invalid_request")
    assert "received before" in replayed["description"]
    # Signed by a key the JWKS does not hold: the JWKS is fetched again once, then refused.
    _refused(_push(served, t.sign(t.claims(), kid="stranger")), "invalid_key")
    assert t.fetches[2:] == ["/.well-known/ssf-configuration/issuer", "/jwks.json"]
    # For another audience.
    _refused(_push(served, t.sign(t.claims(aud="https://someone-else.test"))), "invalid_audience")
    # For an unknown subject: accepted as an event, but resolved to nobody (below).
    unknown = t.claims(sub_id={"format": "email", "email": "carol@memory.test"})
    assert _push(served, t.sign(unknown)).status_code == 202

    # More refusals: another issuer, no or a wrong bearer, another stream's bearer, alg none, HMAC,
    # a signature that does not verify, the wrong content type, a sub claim, no sub_id.
    _refused(_push(served, t.sign(t.claims(iss="https://evil.test/"))), "invalid_issuer")
    _refused(_push(served, t.sign(t.claims()), bearer=None), "authentication_failed")
    _refused(_push(served, t.sign(t.claims()), bearer="guessed"), "authentication_failed")
    _refused(_push(served, t.sign(t.claims()), bearer=OTHER_BEARER), "access_denied")
    unsigned = jwt.encode(t.claims(), None, algorithm="none", headers={"typ": "secevent+jwt"})
    _refused(_push(served, unsigned), "invalid_key")
    hmac_signed = jwt.encode(
        t.claims(), BEARER, algorithm="HS256", headers={"kid": "rsa-1", "typ": "secevent+jwt"}
    )
    _refused(_push(served, hmac_signed), "invalid_key")
    header, _, signature = t.sign(t.claims()).split(".")
    other_payload = t.sign(t.claims(jti="forged")).split(".")[1]
    _refused(_push(served, f"{header}.{other_payload}.{signature}"), "invalid_key")
    _refused(
        _push(served, t.sign(t.claims()), headers={"Content-Type": "application/json"}), "invalid_request"
    )
    _refused(_push(served, t.sign(t.claims(sub="alice"))), "invalid_request")
    _refused(_push(served, t.sign(t.claims(), typ="JWT")), "invalid_request")
    missing_subject = t.claims()
    del missing_subject["sub_id"]
    _refused(_push(served, t.sign(missing_subject)), "invalid_request")
    # ES256 from the published EC key, a complex subject naming bob by iss_sub: accepted.
    bob = t.claims(
        sub_id={"format": "complex", "user": {"format": "iss_sub", "iss": t.issuer, "sub": "bob@memory.test"},
                "device": {"format": "opaque", "id": "laptop-7"}},
        events={SESSION_REVOKED: {"event_timestamp": int(time.time()) - 30, "initiating_entity": "policy"}},
    )  # fmt: skip
    assert _push(served, t.sign(bob, kid="ec-1")).status_code == 202
    # Too large to be a SET.
    too_large = _refused(_push(served, "a" * (64 * 1024 + 1)), "invalid_request")
    assert "larger than" in too_large["description"]
    # No such receiver.
    assert _push(served, t.sign(t.claims()), receiver="nobody").status_code == 404

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(audit_log.c.event, audit_log.c.subject, audit_log.c.data)
                .where(audit_log.c.event.in_(["signal.received", "signal.refused"]))
                .order_by(audit_log.c.seq)
            )
        ).all()
        jtis = set((await conn.execute(select(ssf_received_jtis.c.jti))).scalars())
    outcomes = [(r.event, r.data.get("err")) for r in rows]
    assert outcomes == [
        ("signal.received", None),
        ("signal.refused", "invalid_request"),
        ("signal.refused", "invalid_request"),
        ("signal.refused", "invalid_key"),
        ("signal.refused", "invalid_audience"),
        ("signal.received", None),
        ("signal.refused", "invalid_issuer"),
        ("signal.refused", "authentication_failed"),
        ("signal.refused", "authentication_failed"),
        ("signal.refused", "access_denied"),
        ("signal.refused", "invalid_key"),
        ("signal.refused", "invalid_key"),
        ("signal.refused", "invalid_key"),
        ("signal.refused", "invalid_request"),
        ("signal.refused", "invalid_request"),
        ("signal.refused", "invalid_request"),
        ("signal.refused", "invalid_request"),
        ("signal.received", None),
        ("signal.refused", "invalid_request"),
        ("signal.refused", "invalid_request"),
    ]
    assert rows[0].subject == "alice@memory.test" and rows[0].data["jti"] == valid["jti"]
    assert rows[0].data["resolved"] is True
    assert rows[2].data["jti"] == valid["jti"]  # the replay names the jti it repeated
    assert rows[5].data["resolved"] is False
    assert jtis == {valid["jti"], unknown["jti"], bob["jti"]}
    for row in rows:  # the bearer tokens never reach the audit trail
        assert BEARER not in str(row.data) and OTHER_BEARER not in str(row.data)

    # The accepted events are rows of SecuritySignals, for hunts and detection rules.
    auth = AuthService(AuthStore(engine))
    await auth.create_user("hunter", frozenset({SECURITY_READER}), "correct horse battery")
    token = (await auth.create_token("hunter", "test", None)).token
    query = (
        "SecuritySignals | order by Timestamp asc | project ReportId, EventName, SubjectFormat, Resolved,"
        " AccountUpn, AccountObjectIds, Transmitter"
    )
    found = httpx.post(f"{served}/api/v1/hunting/query", json={"query": query},
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert found.status_code == 200, found.text
    by_jti = {row[0]: row[1:] for row in found.json()["rows"]}
    assert set(by_jti) == {valid["jti"], unknown["jti"], bob["jti"]}
    name, fmt, resolved, upn, ids, transmitter_name = by_jti[valid["jti"]]
    assert (name, fmt, resolved, upn, transmitter_name) == (
        "credential-compromise", "email", True, "alice@memory.test", "partner"
    )  # fmt: skip
    assert set(ids.split(",")) == {"ad:id-alice@memory.test", "entra:id-alice@memory.test",
                                   "okta:id-alice@memory.test"}  # fmt: skip
    assert by_jti[unknown["jti"]][2:4] == [False, None]
    assert by_jti[bob["jti"]][:4] == ["session-revoked", "complex", True, "bob@memory.test"]


async def test_a_detection_rule_over_security_signals_contains_the_person_a_risc_event_names(
    served: str, engine: AsyncEngine, transmitter: Transmitter
) -> None:
    """RISC credential-compromise of alice from the transmitter: a rule over SecuritySignals requests
    the action on her, through the policy gate like any rule; bob's session-revoked is not matched."""
    t = transmitter
    assert _push(served, t.sign(t.claims())).status_code == 202
    bob = t.claims(sub_id={"format": "email", "email": "bob@memory.test"}, events={SESSION_REVOKED: {}})
    assert _push(served, t.sign(bob)).status_code == 202
    auth = AuthService(AuthStore(engine))
    await auth.create_user("lead", frozenset({GLOBAL_ADMINISTRATOR}), "correct horse battery")
    admin = {"Authorization": f"Bearer {(await auth.create_token('lead', 'test', None)).token}"}
    rule = {
        "name": "risc-credential-compromise",
        "query": "SecuritySignals | where EventName == 'credential-compromise' and Resolved"
        " | project AccountUpn",
        "interval_seconds": 300,
        "action": "okta.suspend_user",
        "account_column": "AccountUpn",
    }
    created = httpx.post(f"{served}/api/v1/hunting/rules", json=rule, headers=admin)
    assert created.status_code == 201, created.text
    run = httpx.post(f"{served}/api/v1/hunting/rules/risc-credential-compromise/run", headers=admin)
    assert run.status_code == 200, run.text
    assert (run.json()["rows"], run.json()["new_alerts"], run.json()["skipped"]) == (1, 1, 0)
    actions = httpx.get(f"{served}/api/v1/actions", headers=admin).json()["items"]
    assert [(a["type"], a["target"], a["source"]) for a in actions] == [
        ("okta.suspend_user", "alice@memory.test", "rule")
    ]


async def test_a_critical_subject_member_clampdown_does_not_interpret_leaves_the_subject_unresolved(
    served: str, engine: AsyncEngine, transmitter: Transmitter
) -> None:
    """SSF 1.0 section 7.1: a receiver MUST interpret the members the transmitter marks critical. A
    session-revoked about one of alice's sessions (session critical) is taken in but names no one to
    act on; the same event with only its user member resolves to her."""
    t = transmitter
    t.critical = ["user", "session"]
    alice = {"format": "email", "email": "alice@memory.test"}
    one_session = t.claims(sub_id={"format": "complex", "user": alice,
                                   "session": {"format": "opaque", "id": "sess-1"}},
                           events={SESSION_REVOKED: {}})  # fmt: skip
    whole = t.claims(sub_id={"format": "complex", "user": alice}, events={SESSION_REVOKED: {}})
    for claims in (one_session, whole):
        assert _push(served, t.sign(claims)).status_code == 202
    auth = AuthService(AuthStore(engine))
    await auth.create_user("hunter", frozenset({SECURITY_READER}), "correct horse battery")
    token = (await auth.create_token("hunter", "test", None)).token
    query = "SecuritySignals | project ReportId, Resolved, AccountUpn, ResolutionNote"
    found = httpx.post(f"{served}/api/v1/hunting/query", json={"query": query},
                       headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    by_jti = {row[0]: row[1:] for row in found.json()["rows"]}
    resolved, upn, note = by_jti[one_session["jti"]]
    assert (resolved, upn) == (False, None) and "session" in note and "critical" in note
    assert by_jti[whole["jti"]][:2] == [True, "alice@memory.test"]


async def test_a_set_whose_keys_cannot_be_fetched_answers_503_and_is_audited_as_deferred(
    served: str, engine: AsyncEngine, transmitter: Transmitter
) -> None:
    """The transmitter of receiver `other` cannot be reached for its keys: the SET is neither
    accepted nor refused (the transmitter is to send it again), and the audit trail says so."""
    t = transmitter
    claims = t.claims(iss="https://other.test/")
    answer = _push(served, t.sign(claims), bearer=OTHER_BEARER, receiver="other")
    assert answer.status_code == 503, answer.text
    async with engine.connect() as conn:
        rows = (await conn.execute(select(audit_log).order_by(audit_log.c.seq))).all()
    deferred = [r for r in rows if r.event == "signal.deferred"]
    assert len(deferred) == 1 and not [r for r in rows if r.event.startswith("signal.") and r not in deferred]
    assert deferred[0].data["jti"] == claims["jti"] and deferred[0].data["code"] == "transmitter_unreachable"
    assert deferred[0].actor == "ssf:other" and "other.test" in deferred[0].data["description"]
