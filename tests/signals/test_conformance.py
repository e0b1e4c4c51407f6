"""Conformance with the examples of the specifications: every example SET of OpenID SSF 1.0, CAEP 1.0
and RISC 1.0 listed below parses and validates (signed here with the transmitter's key, its `iss`
the stream's, checked at its own `iat`), and the subject identifier examples of RFC 9493 parse.

Sources (the openid/sharedsignals repository, SSF 1.0 final of 29 August 2025, and RFC 9493):
each example names its section. The RISC account-disabled example has a trailing comma in the
specification (not valid JSON); it is taken without it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from clampdown.config import SsfReceiverSettings
from clampdown.errors import InvalidInput
from clampdown.signals.jwks import JwksCache, configuration_url
from clampdown.signals.subjects import parse_subject, parse_subject_id
from clampdown.signals.tokens import SetVerifier, check_claims
from tests.signals.conftest import Transmitter

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"
_IDP = "https://idp.example.com/"


def _set(iss: str, jti: str, iat: int, aud: str | list[str], sub_id: dict[str, Any], events: dict[str, Any],
         txn: str | None = "8675309") -> dict[str, Any]:  # fmt: skip
    claims = {"iss": iss, "jti": jti, "iat": iat, "aud": aud, "sub_id": sub_id, "events": events}
    return {**claims, "txn": txn} if txn else claims


_JANE_DEVICE = {"format": "iss_sub", "iss": "https://idp.example.com/123456789/",
                "sub": "e9297990-14d2-42ec-a4a9-4036db86509a"}  # fmt: skip
_REASONS = {"initiating_entity": "policy", "event_timestamp": 1615304991}

# (source section, event type, subject format, the example's claims)
EXAMPLES: list[tuple[str, str, str, dict[str, Any]]] = [
    (
        "SSF 1.0 §4.1.8 SET with array aud claim (verification)",
        SSF + "verification",
        "opaque",
        _set(
            "https://transmitter.example.com",
            "123456",
            1493856000,
            ["receiver.example.com/web", "receiver.example.com/mobile"],
            {"format": "opaque", "id": "72e6991badb44e08a69672960053b342"},
            {SSF + "verification": {"state": "VGhpcyBpcyBhbiBleGFtcGxlIHN0YXRlIHZhbHVlLgo="}},
        ),
    ),
    (
        "SSF 1.0 §5 Simple Subject Member (RISC account-enabled)",
        RISC + "account-enabled",
        "email",
        _set(
            _IDP,
            "756E69717565206964656E746966696572",
            1520364019,
            "636C69656E745F6964",
            {"format": "email", "email": "foo@example.com"},
            {RISC + "account-enabled": {}},
        ),
    ),
    (
        "SSF 1.0 §5 RISC event with a phone number subject (account-disabled)",
        RISC + "account-disabled",
        "phone_number",
        _set(
            _IDP,
            "756E69717565206964656E746966696572",
            1520364019,
            "636C69656E745F6964",
            {"format": "phone_number", "phone_number": "+1 206 555 0123"},
            {RISC + "account-disabled": {"reason": "hijacking"}},
        ),
    ),
    (
        "SSF 1.0 §5 CAEP event with properties (token-claims-change)",
        CAEP + "token-claims-change",
        "email",
        _set(
            _IDP,
            "756E69717565206964656E746966696572",
            1520364019,
            "636C69656E745F6964",
            {"format": "email", "email": "user@example.com"},
            {CAEP + "token-claims-change": {"claims": {"token": "some-token-value"}}},
        ),
    ),
    (
        "SSF 1.0 §5 Complex Subject Member (CAEP session-revoked)",
        CAEP + "session-revoked",
        "complex",
        _set(
            _IDP,
            "756E69717565206964656E746966696572",
            1520364019,
            "636C69656E745F6964",
            {
                "format": "complex",
                "user": {
                    "format": "iss_sub",
                    "iss": "https://idp.example.com/3957ea72-1b66-44d6-a044-d805712b9288/",
                    "sub": "jane.smith@example.com",
                },
                "device": {
                    "format": "iss_sub",
                    "iss": "https://idp.example.com/3957ea72-1b66-44d6-a044-d805712b9288/",
                    "sub": "e9297990-14d2-42ec-a4a9-4036db86509a",
                },
            },
            {
                CAEP + "session-revoked": {
                    "initiating_entity": "policy",
                    "reason_admin": {"en": "Policy Violation: C076E82F"},
                    "reason_user": {"en": "Land speed violation.", "es": "Violación de velocidad en tierra."},
                    "event_timestamp": 1600975810,
                }
            },
        ),
    ),
    (
        "SSF 1.0 §5 proprietary subject identifier format",
        CAEP + "token-claims-change",
        "catalog_item",
        _set(
            "https://myservice.example3.com/",
            "756E69717565206964656E746966696534",
            15203800012,
            "636C69656E745F6324",
            {"format": "catalog_item", "catalog_id": "c0384/winter/2354122"},
            {CAEP + "token-claims-change": {"event_timestamp": 1600975810, "claims": {"role": "ro-admin"}}},
        ),
    ),
    (
        "CAEP 1.0 §3.1 session-revoked, required claims + simple subject",
        CAEP + "session-revoked",
        "opaque",
        _set(
            "https://idp.example.com/123456789/",
            "24c63fb56e5a2d77a6b512616ca9fa24",
            1615305159,
            "https://sp.example.com/caep",
            {"format": "opaque", "id": "dMTlD|1600802906337.16|16008.16"},
            {CAEP + "session-revoked": {"event_timestamp": 1615304991}},
        ),
    ),
    (
        "CAEP 1.0 §3.1 session-revoked, complex subject session + user + tenant",
        CAEP + "session-revoked",
        "complex",
        _set(
            "https://idp.example.com/123456789/",
            "24c63fb56e5a2d77a6b512616ca9fa24",
            1615305159,
            "https://sp.example.com/caep",
            {
                "format": "complex",
                "session": {"format": "opaque", "id": "dMTlD|1600802906337.16|16008.16"},
                "user": {
                    "format": "iss_sub",
                    "iss": "https://idp.example.com/123456789/",
                    "sub": "99beb27c-c1c2-4955-882a-e0dc4996fcbc",
                },
                "tenant": {"format": "opaque", "id": "123456789"},
            },
            {
                CAEP + "session-revoked": {
                    **_REASONS,
                    "reason_admin": {"en": "Landspeed Policy Violation: C076E82F"},
                    "reason_user": {
                        "en": "Access attempt from multiple regions.",
                        "es-410": "Intento de acceso desde varias regiones.",
                    },
                }
            },
        ),
    ),
    (
        "CAEP 1.0 §3.1 session-revoked, complex subject user + device + tenant",
        CAEP + "session-revoked",
        "complex",
        _set(
            "https://idp.example.com/123456789/",
            "24c63fb56e5a2d77a6b512616ca9fa24",
            1615305159,
            "https://sp.example.com/caep",
            {
                "format": "complex",
                "user": {
                    "format": "iss_sub",
                    "iss": "https://idp.example.com/123456789/",
                    "sub": "jane.smith@example.com",
                },
                "device": _JANE_DEVICE,
                "tenant": {"format": "opaque", "id": "123456789"},
            },
            {
                CAEP + "session-revoked": {
                    **_REASONS,
                    "reason_admin": {"en": "Policy Violation: C076E822"},
                    "reason_user": {
                        "en": "This device is no longer compliant.",
                        "it": "Questo dispositivo non è più conforme.",
                    },
                }
            },
        ),
    ),
    (
        "CAEP 1.0 §3.3 credential-change, provisioning a FIDO2 authenticator",
        CAEP + "credential-change",
        "iss_sub",
        _set(
            "https://idp.example.com/3456789/",
            "07efd930f0977e4fcc1149a733ce7f78",
            1615305159,
            "https://sp.example2.net/caep",
            {"format": "iss_sub", "iss": "https://idp.example.com/3456789/", "sub": "jane.smith@example.com"},
            {
                CAEP + "credential-change": {
                    "credential_type": "fido2-roaming",
                    "change_type": "create",
                    "fido2_aaguid": "accced6a-63f5-490a-9eea-e59bc1896cfc",
                    "friendly_name": "Jane's USB authenticator",
                    "initiating_entity": "user",
                    "reason_admin": {"en": "User self-enrollment"},
                    "event_timestamp": 1615304991,
                }
            },
        ),
    ),
    (
        "RISC 1.0 §2.1 account-credential-change-required",
        RISC + "account-credential-change-required",
        "iss_sub",
        _set(
            _IDP,
            "756E69717565206964656E746966696572",
            1508184845,
            "636C69656E745F6964",
            {"format": "iss_sub", "iss": _IDP, "sub": "7375626A656374"},
            {RISC + "account-credential-change-required": {}},
            txn=None,
        ),
    ),
    (
        "RISC 1.0 §2.3 account-disabled (hijacking)",
        RISC + "account-disabled",
        "iss_sub",
        _set(
            _IDP,
            "756E69717565206964656E746966696572",
            1508184845,
            "636C69656E745F6964",
            {"format": "iss_sub", "iss": _IDP, "sub": "7375626A656374"},
            {RISC + "account-disabled": {"reason": "hijacking"}},
            txn=None,
        ),
    ),
    (
        "RISC 1.0 §2.5 identifier-changed",
        RISC + "identifier-changed",
        "email",
        _set(
            _IDP,
            "756E69717565206964656E746966696572",
            1508184845,
            "636C69656E745F6964",
            {"format": "email", "email": "john.doe@example.com"},
            {RISC + "identifier-changed": {"new-value": "john.roe@example.com"}},
            txn=None,
        ),
    ),
    (
        "RISC 1.0 §2.7 credential-compromise, a compromised credential found",
        RISC + "credential-compromise",
        "iss_sub",
        _set(
            "https://idp.example.com/3456790/",
            "756E69717565206964656E746966696572",
            1508184845,
            "https://sp.example2.net/caep",
            {"format": "iss_sub", "iss": "https://idp.example.com/3456790/", "sub": "joe.smith@example.com"},
            {RISC + "credential-compromise": {"credential_type": "password"}},
            txn=None,
        ),
    ),
]

# RFC 9493 section 3.2: one example per registered format (and section 3.2.8's aliases).
SUBJECT_EXAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("RFC 9493 §3.2.1 account", {"format": "account", "uri": "acct:example.user@service.example.com"}),
    ("RFC 9493 §3.2.2 email", {"format": "email", "email": "user@example.com"}),
    (
        "RFC 9493 §3.2.3 iss_sub",
        {"format": "iss_sub", "iss": "https://issuer.example.com/", "sub": "145234573"},
    ),
    ("RFC 9493 §3.2.4 opaque", {"format": "opaque", "id": "11112222333344445555"}),
    ("RFC 9493 §3.2.5 phone_number", {"format": "phone_number", "phone_number": "+12065550100"}),
    ("RFC 9493 §3.2.6 did", {"format": "did", "url": "did:example:123456"}),
    ("RFC 9493 §3.2.7 uri", {"format": "uri", "uri": "https://user.example.com/"}),
    (
        "RFC 9493 §3.2.8 aliases",
        {
            "format": "aliases",
            "identifiers": [
                {"format": "email", "email": "user@example.com"},
                {"format": "phone_number", "phone_number": "+12065550100"},
                {"format": "email", "email": "user+qualifier@example.com"},
            ],
        },
    ),
]


def _settings(claims: dict[str, Any], issuer: str, url: str | None = None) -> SsfReceiverSettings:
    aud = claims["aud"]
    return SsfReceiverSettings(issuer=issuer, audience=aud if isinstance(aud, str) else aud[0],
                               bearer="unused-here", configuration_url=url)  # fmt: skip


@pytest.mark.parametrize(
    ("source", "event_type", "subject_format", "claims"), EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
async def test_the_specifications_example_sets_parse_and_validate(
    source: str, event_type: str, subject_format: str, claims: dict[str, Any], transmitter: Transmitter
) -> None:
    at = datetime.fromtimestamp(claims["iat"], UTC)
    checked = check_claims(claims, _settings(claims, claims["iss"]), at)  # the claims exactly as written
    assert [e.type for e in checked.events] == [event_type]
    assert checked.subject.format == subject_format
    assert checked.jti == claims["jti"] and checked.txn == claims.get("txn")
    # Signed and verified through the transmitter's JWKS, as a pushed SET is.
    signed = {**claims, "iss": transmitter.issuer}
    settings = _settings(signed, transmitter.issuer)
    assert configuration_url(settings) == f"{transmitter.base}/.well-known/ssf-configuration/issuer"
    async with httpx.AsyncClient() as http:
        verifier = SetVerifier(settings, JwksCache(settings, http))
        for kid in ("rsa-1", "ec-1"):
            verified = await verifier.verify(transmitter.sign(signed, kid=kid), at)
            assert verified.events == checked.events and verified.subject == checked.subject


@pytest.mark.parametrize(("source", "sub_id"), SUBJECT_EXAMPLES, ids=[s[0] for s in SUBJECT_EXAMPLES])
def test_the_rfc9493_subject_identifier_examples_parse(source: str, sub_id: dict[str, Any]) -> None:
    parsed = parse_subject(sub_id)
    assert parsed.format == sub_id["format"] and parsed.user is not None
    if sub_id["format"] == "aliases":
        assert [a.format for a in parsed.user.aliases] == ["email", "phone_number", "email"]
    else:
        assert parsed.user.members == {k: v for k, v in sub_id.items() if k != "format"}


@pytest.mark.parametrize(
    ("sub_id", "why"),
    [
        ({"format": "email"}, "needs the member 'email'"),
        ({"format": "iss_sub", "iss": "https://idp.example.com/"}, "needs the member 'sub'"),
        ({"format": "email", "email": "no-at-sign"}, "not an email address"),
        ({"format": "complex"}, "at least one member"),
        ({"format": "complex", "user": "alice"}, "sub_id.user must be a JSON object"),
        ({"format": "aliases", "identifiers": []}, "lists its identifiers"),
        ("alice@example.com", "must be a JSON object"),
    ],
)
def test_a_malformed_subject_is_refused_as_invalid_request(sub_id: Any, why: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_subject(sub_id)
    assert refused.value.code == "invalid_request" and why in refused.value.message


def test_the_complex_subjects_user_is_the_person() -> None:
    example = EXAMPLES[8][3]["sub_id"]
    subject = parse_subject(example)
    assert subject.user == parse_subject_id(example["user"])
    assert set(subject.members) == {"user", "device", "tenant"}


@pytest.mark.parametrize(
    ("change", "err"),
    [
        ({"exp": 1615305159 + 3600}, "invalid_request"),  # SSF 1.0 §4.1.7: no exp
        ({"sub": "jane"}, "invalid_request"),  # SSF 1.0 §4.1.2: no sub
        ({"events": {}}, "invalid_request"),
        ({"events": {"not a uri": {}}}, "invalid_request"),
        ({"events": {CAEP + "session-revoked": "revoked"}}, "invalid_request"),
        ({"jti": ""}, "invalid_request"),
        ({"iat": "yesterday"}, "invalid_request"),
        ({"aud": ["https://other.example.com"]}, "invalid_audience"),
        ({"iss": "https://other.example.com/"}, "invalid_issuer"),
    ],
)
def test_a_claim_against_the_rules_is_refused_with_its_code(change: dict[str, Any], err: str) -> None:
    claims = {**EXAMPLES[6][3], **change}
    settings = _settings(EXAMPLES[6][3], EXAMPLES[6][3]["iss"])
    with pytest.raises(InvalidInput) as refused:
        check_claims(claims, settings, datetime.fromtimestamp(1615305159, UTC))
    assert refused.value.code == err, refused.value.message


def test_iat_is_accepted_within_the_window_only() -> None:
    claims = EXAMPLES[6][3]
    settings = _settings(claims, claims["iss"])
    issued = datetime.fromtimestamp(claims["iat"], UTC)
    for seconds, accepted in ((299, True), (301, False), (-59, True), (-61, False)):
        now = datetime.fromtimestamp(claims["iat"] + seconds, UTC)
        if accepted:
            assert check_claims(claims, settings, now).issued_at == issued
        else:
            with pytest.raises(InvalidInput, match="outside the accepted window"):
                check_claims(claims, settings, now)
