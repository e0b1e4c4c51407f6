"""Issue 16 end to end: a person an attacker holds through an attacker-registered FIDO2 key
(Entra ID), a consent grant to an OAuth app and an authenticator of their own (Okta), and a
privileged group beside Domain Users (AD). The default `contain` (the real command, a real
worker) takes every one of them away, and `containments show` says what may still work and
until when, with the lab's token lifetimes and Kerberos policy; `release` gives back the group
and the account states, and lists the removed method, factor and grant as not restorable. Every
effect read where it lands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from clampdown_lab.samba.seed import LAB_KERBEROS_POLICY, seed_kerberos_policy
from tests.ad.test_eviction import BACKUP_OPERATORS, add_member, member_write, remove_member
from tests.guardrails.test_lifecycle_scenarios import (
    Clampdown,
    _contained,
    _eventually,
    _steps,
    lab_clampdown,
)
from tests.guardrails.test_playbooks import _world
from tests.lab_config import clampdown
from tests.web.lab import ScratchPerson, WebLab

pytestmark = [pytest.mark.samba, pytest.mark.slow]
__all__ = ["lab_clampdown"]  # the fixture, used by name below

ATTACKER_APP = "0oaattackerapp000001"
LAB_TOKEN_LIFETIME = timedelta(minutes=120)  # the lab's Entra policy and Okta custom server rule


def _okta_user(lab: WebLab, who: ScratchPerson) -> dict[str, Any]:
    answer = httpx.get(f"{lab.okta.url}/_emulator/users/{who.okta_id}", timeout=10)
    answer.raise_for_status()
    return dict(answer.json())


def _entra_methods(lab: WebLab, who: ScratchPerson) -> list[dict[str, Any]]:
    with lab.entra_admin() as admin:
        return list(admin.get("/_emulator/auth-methods").json().get(who.entra_id, []))


def _groups(lab: WebLab, who: ScratchPerson) -> set[str]:
    conn = lab.samba.directory.connect()
    try:
        conn.search(who.ad_dn, "(objectClass=*)", "BASE", attributes=["memberOf"])
        return {str(g).lower() for g in conn.response[0]["attributes"].get("memberOf") or []}
    finally:
        conn.unbind()


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_contain_evicts_and_release_restores_what_it_can_and_lists_the_rest(
    lab_clampdown: Callable[..., Clampdown], web_lab: WebLab, person: ScratchPerson
) -> None:
    seed_kerberos_policy(web_lab.samba.sysvol)  # what `clampdown lab up` writes
    # The attacker's ways back in: a FIDO2 key, a consent grant and a privileged group.
    with web_lab.entra_admin() as admin:
        seeded = admin.post("/_emulator/auth-methods", json={
            "user": person.entra_id, "kind": "fido2Methods", "properties": {"displayName": "Attacker key"}})
        assert seeded.status_code == 200, seeded.text
    granted = httpx.post(f"{web_lab.okta.url}/_emulator/users/{person.okta_id}/grants",
                         json={"clientId": ATTACKER_APP, "scopeId": "okta.users.read.self"}, timeout=10)
    assert granted.status_code == 200, granted.text
    enrolled = httpx.post(f"{web_lab.okta.url}/_emulator/users/{person.okta_id}/factors",
                          json={"factorType": "token:software:totp", "provider": "GOOGLE"}, timeout=10)
    assert enrolled.status_code == 200, enrolled.text
    directory = web_lab.samba.directory.connect()
    add_member(directory, BACKUP_OPERATORS, person.ad_dn)
    try:
        with member_write(directory, web_lab.samba, BACKUP_OPERATORS):
            _contain_and_release(lab_clampdown(), web_lab, person)
    finally:
        if BACKUP_OPERATORS.lower() in _groups(web_lab, person):
            remove_member(directory, BACKUP_OPERATORS, person.ad_dn)
        directory.unbind()


def _contain_and_release(cd: Clampdown, lab: WebLab, person: ScratchPerson) -> None:
    before = _world(lab, person)
    assert [m["kind"] for m in _entra_methods(lab, person)].count("fido2Methods") == 1
    assert ATTACKER_APP in [g["clientId"] for g in _okta_user(lab, person)["grants"]]
    assert "GOOGLE" in [f["provider"] for f in _okta_user(lab, person)["factors"]]
    assert BACKUP_OPERATORS.lower() in _groups(lab, person)

    run = cd.run("contain", person.upn, "-r", "INC-16 phished", "--wait")
    steps = _steps(run)
    assert {s["status"] for s in steps.values()} == {"completed"}, steps
    # Sign-in blocked before sessions end, sessions ended before methods and grants go.
    assert steps["entra.revoke_sessions"]["after_action_id"] == steps["entra.suspend_user"]["id"]
    assert steps["entra.remove_auth_methods"]["after_action_id"] == steps["entra.revoke_sessions"]["id"]
    assert steps["okta.revoke_grants"]["after_action_id"] == steps["okta.clear_sessions"]["id"]

    # After contain, none of the attacker's ways works.
    assert _contained(_eventually(lambda: _world(lab, person), _contained))
    assert not any(m["kind"] == "fido2Methods" for m in _entra_methods(lab, person))
    okta = _okta_user(lab, person)
    assert okta["grants"] == [] and not okta["sessions"] and okta["status"] == "SUSPENDED"
    assert okta["factors"] == []
    assert BACKUP_OPERATORS.lower() not in _groups(lab, person)

    # What may still work, and until when: the lab's policies, from when each cut completed.
    shown = cd.containment(run["containment_id"])
    residual = {(r["provider"], r["kind"]): r for r in shown["residual"]}
    tickets = residual[("ad", "kerberos_tickets")]
    disabled_at = _at(steps["ad.disable_user"]["finished_at"])
    assert tickets["status"] == "until"
    assert _at(tickets["until"]) == disabled_at + timedelta(hours=LAB_KERBEROS_POLICY["MaxTicketAge"])
    entra_cut = min(_at(steps[t]["finished_at"]) for t in ("entra.suspend_user", "entra.revoke_sessions"))
    entra_tokens = residual[("entra", "access_tokens")]
    assert entra_tokens["status"] == "until" and _at(entra_tokens["until"]) == entra_cut + LAB_TOKEN_LIFETIME
    assert "CAE-capable apps" in entra_tokens["detail"]
    okta_cut = min(_at(steps[t]["finished_at"]) for t in ("okta.suspend_user", "okta.clear_sessions"))
    okta_tokens = residual[("okta", "access_tokens")]
    assert okta_tokens["status"] == "until" and _at(okta_tokens["until"]) == okta_cut + LAB_TOKEN_LIFETIME
    assert residual[("entra", "refresh_tokens")]["status"] == "ended"
    assert residual[("okta", "sessions")]["status"] == "ended"
    assert residual[("okta", "grants")]["status"] == "ended"
    assert residual[("okta", "factors")]["status"] == "ended"
    assert residual[("ad", "privileged_groups")]["status"] == "ended"
    assert residual[("entra", "auth_methods")]["items"] == ["password"]
    words = clampdown(cd.config, "containments", "show", str(run["containment_id"]), token=cd.lead)
    assert words.returncode == 0, words.stderr
    said = " ".join(words.stdout.split())  # as a person reads it, whatever the terminal's width
    assert "What may still work:" in said
    assert f"ad {person.upn} kerberos_tickets: until {tickets['until'][:10]}" in said

    # Release: the group and every account state come back; what was taken for good is listed.
    released = cd.run("release", person.upn, "-r", "INC-16 closed", "--wait")
    assert {a["status"] for a in released["actions"]} == {"completed"}, released["actions"]
    after = _world(lab, person)
    assert after == before
    assert BACKUP_OPERATORS.lower() in _groups(lab, person)
    assert not any(m["kind"] == "fido2Methods" for m in _entra_methods(lab, person))
    assert _okta_user(lab, person)["grants"] == []
    skipped = released["skipped"]
    not_restored = {line.split(" ", 1)[0]: line for line in skipped if "cannot be restored" in line}
    assert "FIDO2 security key 'Attacker key'" in not_restored["entra.remove_auth_methods"]
    assert ATTACKER_APP in not_restored["okta.revoke_grants"]
    assert "GOOGLE" in not_restored["okta.reset_factors"]
    assert set(not_restored) == {
        "entra.revoke_sessions", "entra.remove_auth_methods", "okta.clear_sessions", "okta.revoke_grants",
        "okta.reset_factors",
    }  # fmt: skip
