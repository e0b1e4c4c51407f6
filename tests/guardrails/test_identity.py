"""Containment lands on the right person: accounts link only through strong anchors (SID, UPN,
login), never email; a reference that names different people is refused with nothing queued.
Each effect is read where it lands: Samba, the Graph emulator and the Okta emulator."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import ldap3
import pytest

from clampdown_lab.people import DemoPerson
from clampdown_lab.samba.seed import MANAGED_OU, create_user
from tests.guardrails.conftest import Guarded
from tests.lab_config import clampdown
from tests.web.lab import PASSWORD, ScratchPerson, WebLab


@dataclass(frozen=True)
class Hybrid:
    """A scratch person in AD and Entra ID (synced) only, with no Okta account."""

    upn: str
    ad_dn: str
    entra_id: str


@dataclass(frozen=True)
class OktaOnly:
    login: str
    okta_id: str


def _okta_user(lab: WebLab, given: str, email: str) -> OktaOnly:
    """An Okta-only user whose email (which a user can often set) is `email`."""
    login = f"{given}.{uuid.uuid4().hex[:6]}@lab.example.test"
    profile = {"login": login, "email": email, "firstName": given.title(), "lastName": "Test"}
    answer = httpx.post(f"{lab.okta.url}/_emulator/users", json={"users": [profile]}, timeout=10)
    answer.raise_for_status()
    return OktaOnly(login, answer.json()["ids"][login])


@pytest.fixture
def hybrid(web_lab: WebLab) -> Iterator[Hybrid]:
    """Like tests/web/lab.py create_person, without the Okta account; the AD account is deleted after."""
    suffix = uuid.uuid4().hex[:6]
    username = f"carol.id.{suffix}"
    person = DemoPerson(username, "Carol", f"Identity {suffix}", "Security", "Test user")
    conn = web_lab.samba.directory.connect()
    try:
        ids = create_user(conn, person, MANAGED_OU, PASSWORD)
    finally:
        conn.unbind()
    seed = {"username": username, "given_name": "Carol", "surname": f"Identity {suffix}",
            "department": "Security", "title": "Test user",
            "on_premises": {k: ids[k] for k in ("objectSid", "sAMAccountName", "objectGUID")}}  # fmt: skip
    with web_lab.entra_admin() as admin:
        made = admin.post("/_emulator/people", json=[seed])
        made.raise_for_status()
        entra_id = made.json()["ids"][username]
    yield Hybrid(person.upn, ids["dn"], entra_id)
    conn = web_lab.samba.directory.connect()
    try:
        conn.delete(ids["dn"])
    finally:
        conn.unbind()


def _ad_uac(lab: WebLab, dn: str) -> int:
    conn = lab.samba.directory.connect()
    try:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl"])
        return int(conn.response[0]["raw_attributes"]["userAccountControl"][0])
    finally:
        conn.unbind()


def _entra_enabled(lab: WebLab, entra_id: str) -> bool:
    with lab.entra_admin() as admin:
        user = next(u for u in admin.get("/_emulator/users").json() if u["id"] == entra_id)
    return bool(user["accountEnabled"])


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_an_okta_email_naming_the_victim_never_leads_contain_to_the_victim(
    web_lab: WebLab, person: ScratchPerson, guarded: Guarded
) -> None:
    """The issue's scenario: mallory (Okta only) sets her email to the victim's UPN."""
    mallory = _okta_user(web_lab, "mallory", email=person.upn)
    victim_uac = _ad_uac(web_lab, person.ad_dn)
    assert not victim_uac & 2 and _entra_enabled(web_lab, person.entra_id)

    dry = _json(clampdown(guarded.config, "contain", mallory.login, "-r", "INC-90", "--dry-run", "--json",
                          token=guarded.lead))  # fmt: skip
    assert [(p["action"], p["account"]) for p in dry["plan"]] == [("okta.suspend_user", mallory.login)]
    assert dry["plan"][0]["linked_by"] == "matched the reference by login"
    assert dry["actions"] == [] and dry["batch_id"] is None

    run = _json(clampdown(guarded.config, "contain", mallory.login, "-r", "INC-90", "--wait", "--json",
                          token=guarded.lead))  # fmt: skip
    assert [(a["type"], a["account"]["id"], a["status"]) for a in run["actions"]] == [
        ("okta.suspend_user", mallory.okta_id, "completed")
    ]
    assert run["actions"][0]["account"]["linked_by"] == "matched the reference by login"
    assert any("has no ad account" in line for line in run["skipped"])
    # Where it lands: mallory is suspended; the victim's accounts are untouched everywhere.
    assert web_lab.okta_status(mallory.okta_id) == "SUSPENDED"
    assert _ad_uac(web_lab, person.ad_dn) == victim_uac
    assert _entra_enabled(web_lab, person.entra_id)
    assert web_lab.okta_status(person.okta_id) == "ACTIVE"
    shown = _json(clampdown(guarded.config, "actions", "show", str(run["actions"][0]["id"]), "--json",
                            token=guarded.lead))  # fmt: skip
    assert shown["account"]["linked_by"] == "matched the reference by login"


def test_the_victims_own_containment_says_how_each_account_was_linked(
    web_lab: WebLab, person: ScratchPerson, guarded: Guarded
) -> None:
    _okta_user(web_lab, "mallory", email=person.upn)  # a second claim on the victim's address
    dry = _json(clampdown(guarded.config, "contain", person.upn, "-r", "INC-91", "--dry-run", "--json",
                          token=guarded.lead))  # fmt: skip
    linked = {p["provider"]: p["linked_by"] for p in dry["plan"]}
    assert linked["ad"] == "matched the reference by userPrincipalName"
    assert linked["entra"].startswith("matched the reference by userPrincipalName; Entra ")
    assert linked["okta"] == f"matched the reference by login; Okta login = AD userPrincipalName {person.upn}"
    assert {p["account"] for p in dry["plan"] if p["provider"] == "okta"} == {person.upn}


def test_a_reference_naming_different_people_is_refused_and_nothing_queued(
    web_lab: WebLab, hybrid: Hybrid, guarded: Guarded
) -> None:
    """Carol has no Okta account; her UPN finds mallory there by email: not one person."""
    mallory = _okta_user(web_lab, "mallory", email=hybrid.upn)
    for extra in (["--dry-run"], ["--wait"]):
        refused = clampdown(guarded.config, "contain", hybrid.upn, "-r", "INC-92", *extra, token=guarded.lead)
        assert refused.returncode == 6, refused.stdout + refused.stderr  # Conflict
        message = " ".join(refused.stderr.split())  # the one-line message, as the terminal wraps it
        assert f"'{hybrid.upn}' does not name one person" in message
        assert f"AD {hybrid.upn} (matched the reference by userPrincipalName" in message
        assert f"Okta {mallory.login} (matched the reference by email; login {mallory.login}" in message
        assert "shares no objectSid, userPrincipalName or login" in message and "email never links" in message
    assert _json(clampdown(guarded.config, "actions", "list", "--json", token=guarded.lead)) == []
    assert not _ad_uac(web_lab, hybrid.ad_dn) & 2
    assert _entra_enabled(web_lab, hybrid.entra_id)
    assert web_lab.okta_status(mallory.okta_id) == "ACTIVE"
