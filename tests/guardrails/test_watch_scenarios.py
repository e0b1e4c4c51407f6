"""The containment watch against the lab: another admin re-enables a contained person in AD and
the next directory sync turns the Entra account back on; one pass of the watch (`clampdown
containments watch`, as `clampdown serve` runs it every interval) sees both, audits the drift,
and the worker contains both accounts again, read back in Samba and the Graph emulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import ldap3
import pytest

from tests.guardrails.test_lifecycle_scenarios import Clampdown, _contained, _eventually, lab_clampdown
from tests.guardrails.test_playbooks import _world
from tests.lab_config import clampdown
from tests.web.lab import ScratchPerson, WebLab

pytestmark = [pytest.mark.samba, pytest.mark.slow]
__all__ = ["lab_clampdown"]  # the fixture, used by name below

HYBRID = {"contain": {"on_drift": "recontain",
                      "steps": [{"action": "ad.disable_user"},
                                {"action": "entra.suspend_user", "after": "ad.disable_user"},
                                {"action": "okta.suspend_user"}]}}  # fmt: skip


def _enable_in_ad(lab: WebLab, who: ScratchPerson) -> None:
    """Another admin turns the AD account back on, outside Clampdown."""
    conn = lab.samba.directory.connect()
    try:
        conn.search(who.ad_dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl"])
        uac = int(conn.response[0]["raw_attributes"]["userAccountControl"][0])
        assert conn.modify(who.ad_dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(uac & ~2)])]})
    finally:
        conn.unbind()


def _drift_events(cd: Clampdown) -> list[dict[str, Any]]:
    done = clampdown(cd.config, "audit", "export", token=cd.lead)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [r for r in rows if r["event"] == "containment.drifted"]


def test_a_sync_that_reenables_a_contained_person_is_seen_and_contained_again(
    lab_clampdown: Callable[..., Clampdown], web_lab: WebLab, person: ScratchPerson
) -> None:
    cd = lab_clampdown(playbooks=HYBRID)
    run = cd.run("contain", person.upn, "-r", "INC-DRIFT", "--wait")
    assert _contained(_eventually(lambda: _world(web_lab, person), _contained, timeout=60))

    _enable_in_ad(web_lab, person)
    with web_lab.entra_admin() as admin:
        synced = admin.post("/_emulator/sync", json={person.username: True})
        assert synced.json()["changed"] == [person.entra_id]
    world = _world(web_lab, person)
    assert not world["ad_uac"] & 2 and world["entra_enabled"]  # the attacker's way back in

    found = cd.run("containments", "watch")
    assert sorted((d["type"], d["found"]) for d in found["drifts"]) == [
        ("ad.disable_user", True), ("entra.suspend_user", True)
    ]  # fmt: skip
    assert sorted(a["type"] for a in found["reapplied"]) == ["ad.disable_user", "entra.suspend_user"]
    assert {a["requested_by"] for a in found["reapplied"]} == {"watch"}
    assert _contained(_eventually(lambda: _world(web_lab, person), _contained, timeout=60))

    containment = cd.containment(run["containment_id"])
    assert containment["state"] == "active"
    drift_notes = [n for n in containment["notes"] if n.startswith("drift")]
    assert len(drift_notes) == 2
    again = [a for a in containment["actions"] if a["requested_by"] == "watch"]
    assert {a["status"] for a in again} == {"completed"}  # in the action center, as steps
    events = _drift_events(cd)
    assert sorted(e["data"]["type"] for e in events) == ["ad.disable_user", "entra.suspend_user"]
    assert cd.run("containments", "watch")["drifts"] == []  # held again: nothing more to say

    cd.run("release", person.upn, "-r", "false positive", "--wait")
    world = _eventually(lambda: _world(web_lab, person), lambda w: not w["ad_uac"] & 2 and w["entra_enabled"])
    assert world["okta"] == "ACTIVE"  # released once, to the state before the containment


EVICT = {"contain": {"on_drift": "recontain",
                     "steps": [{"action": "entra.suspend_user"},
                               {"action": "entra.remove_auth_methods", "after": "entra.suspend_user"},
                               {"action": "okta.suspend_user"},
                               {"action": "okta.revoke_grants", "after": "okta.suspend_user"}]}}  # fmt: skip


def test_a_method_or_grant_added_back_while_contained_is_seen_and_taken_again(
    lab_clampdown: Callable[..., Clampdown], web_lab: WebLab, person: ScratchPerson
) -> None:
    from tests.guardrails.test_eviction_scenario import _entra_methods, _okta_user

    cd = lab_clampdown(playbooks=EVICT)
    run = cd.run("contain", person.upn, "-r", "INC-BACK", "--wait")
    assert {a["status"] for a in run["actions"]} == {"completed"}
    assert cd.run("containments", "watch")["drifts"] == []  # nothing came back yet

    # While contained, someone registers a FIDO2 key and consents an OAuth app for the person.
    with web_lab.entra_admin() as admin:
        admin.post("/_emulator/auth-methods", json={
            "user": person.entra_id, "kind": "fido2Methods", "properties": {"displayName": "Back door"}
        }).raise_for_status()  # fmt: skip
    httpx.post(f"{web_lab.okta.url}/_emulator/users/{person.okta_id}/grants",
               json={"clientId": "0oabackdoorapp000001"}, timeout=10).raise_for_status()  # fmt: skip

    found = cd.run("containments", "watch")
    drifts = {d["type"]: d for d in found["drifts"]}
    assert set(drifts) == {"entra.remove_auth_methods", "okta.revoke_grants"}
    assert "Back door" in str(drifts["entra.remove_auth_methods"]["found"])
    assert "0oabackdoorapp000001" in str(drifts["okta.revoke_grants"]["found"])
    taken = ["entra.remove_auth_methods", "okta.revoke_grants"]
    assert sorted(a["type"] for a in found["reapplied"]) == taken
    _eventually(lambda: _okta_user(web_lab, person)["grants"], lambda g: g == [])
    methods = _eventually(lambda: _entra_methods(web_lab, person),
                          lambda ms: not any(m["kind"] == "fido2Methods" for m in ms))  # fmt: skip
    assert not any(m["kind"] == "fido2Methods" for m in methods)
    assert sorted(e["data"]["type"] for e in _drift_events(cd)) == taken
    _eventually(lambda: cd.run("containments", "watch")["drifts"], lambda d: d == [])
