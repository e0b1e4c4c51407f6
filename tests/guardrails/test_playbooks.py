"""Contain and release a person everywhere, protected accounts, four eyes and dry-runs, each
checked where it lands: Samba, the Graph emulator and the Okta emulator."""

from __future__ import annotations

import json
from typing import Any

import ldap3

from clampdown_lab.samba.seed import BASE_DN
from tests.guardrails.conftest import Guarded
from tests.lab_config import clampdown
from tests.web.lab import ScratchPerson, WebLab


def _world(lab: WebLab, who: ScratchPerson) -> dict[str, Any]:
    """Everything the playbooks touch, as each provider holds it."""
    conn = lab.samba.directory.connect()
    try:
        conn.search(who.ad_dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl", "pwdLastSet"])
        raw = conn.response[0]["raw_attributes"]
    finally:
        conn.unbind()
    with lab.entra_admin() as admin:
        user = next(u for u in admin.get("/_emulator/users").json() if u["id"] == who.entra_id)
        risky = [r for r in admin.get("/_emulator/risky").json() if r["id"] == who.entra_id]
    return {
        "ad_uac": int(raw["userAccountControl"][0]),
        # AD accepts only 0 or -1 (now) for pwdLastSet: what can be restored is "must change or not".
        "ad_must_change_password": int(raw["pwdLastSet"][0]) == 0,
        "entra_enabled": user["accountEnabled"],
        "entra_risk": risky[0]["riskLevel"] if risky else "none",
        "okta": lab.okta_status(who.okta_id),
    }


def _json(result: Any) -> Any:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_contain_then_release_leaves_every_account_as_it_was(
    web_lab: WebLab, person: ScratchPerson, guarded: Guarded
) -> None:
    before = _world(web_lab, person)
    assert before["okta"] == "ACTIVE" and before["entra_enabled"] and not before["ad_uac"] & 2
    run = _json(clampdown(guarded.config, "contain", person.upn, "-r", "INC-77 phished", "--wait", "--json",
                          token=guarded.lead))  # fmt: skip
    statuses = {a["type"]: a["status"] for a in run["actions"]}
    assert set(statuses) == {
        "ad.disable_user", "ad.force_password_reset", "entra.suspend_user",
        "entra.revoke_sessions", "entra.mark_compromised", "okta.suspend_user",
    }  # fmt: skip
    assert set(statuses.values()) == {"completed"}, statuses
    by_type = {a["type"]: a for a in run["actions"]}
    # Hybrid order: Entra ID is suspended only after AD, sessions only after sign-in is blocked.
    assert by_type["entra.suspend_user"]["started_at"] >= by_type["ad.disable_user"]["finished_at"]
    assert by_type["entra.revoke_sessions"]["started_at"] >= by_type["entra.suspend_user"]["finished_at"]
    contained = _world(web_lab, person)
    assert contained["ad_uac"] & 2 and contained["ad_must_change_password"]
    assert not contained["entra_enabled"] and contained["entra_risk"] == "high"
    assert contained["okta"] == "SUSPENDED"

    released = _json(clampdown(guarded.config, "release", person.upn, "-r", "false positive", "--wait",
                               "--json", token=guarded.lead))  # fmt: skip
    assert {a["status"] for a in released["actions"]} == {"completed"}, released
    after = _world(web_lab, person)
    assert after == before


def test_protected_account_is_refused_with_the_rule_named(
    web_lab: WebLab, person: ScratchPerson, guarded: Guarded
) -> None:
    conn = web_lab.samba.directory.connect()
    admins = f"CN=Domain Admins,CN=Users,{BASE_DN}"
    try:
        assert conn.modify(admins, {"member": [(ldap3.MODIFY_ADD, [person.ad_dn])]}), conn.result
        single = clampdown(
            guarded.config, "act", "ad.disable_user", person.upn, "-r", "x", token=guarded.lead
        )
        assert single.returncode == 7, single.stderr
        assert "is a protected account (member of AD group 'Domain Admins')" in single.stderr
        whole = clampdown(guarded.config, "contain", person.upn, "-r", "INC-79", token=guarded.lead)
        assert whole.returncode == 7 and "member of AD group 'Domain Admins'" in whole.stderr
        listed = _json(clampdown(guarded.config, "actions", "list", "--json", token=guarded.lead))
        assert listed == []  # nothing was queued, for any provider
        assert not web_lab.ad_disabled(person.ad_dn) and web_lab.okta_status(person.okta_id) == "ACTIVE"
    finally:
        conn.modify(admins, {"member": [(ldap3.MODIFY_DELETE, [person.ad_dn])]})
        conn.unbind()


def test_four_eyes(web_lab: WebLab, person: ScratchPerson, guarded: Guarded) -> None:
    run = _json(clampdown(guarded.config, "contain", person.upn, "--playbook", "contain-approved", "-r",
                          "INC-78", "--json", token=guarded.lead))  # fmt: skip
    assert {a["status"] for a in run["actions"]} == {"awaiting_approval"}
    own = clampdown(guarded.config, "actions", "approve", "--batch", run["batch_id"], token=guarded.lead)
    assert own.returncode == 6 and "cannot approve their own request" in own.stderr
    reader = clampdown(guarded.config, "actions", "approve", "--batch", run["batch_id"], token=guarded.reader)
    assert reader.returncode == 7
    assert not web_lab.ad_disabled(person.ad_dn) and web_lab.okta_status(person.okta_id) == "ACTIVE"
    approved = _json(clampdown(guarded.config, "actions", "approve", "--batch", run["batch_id"], "--json",
                               token=guarded.second))  # fmt: skip
    assert {a["status"] for a in approved} == {"queued"} and {a["approved_by"] for a in approved} == {
        "second"
    }
    ids = [str(a["id"]) for a in approved]
    for action_id in ids:
        shown = clampdown(guarded.config, "actions", "show", action_id, "--json", token=guarded.lead)
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = [
            _json(clampdown(guarded.config, "actions", "show", i, "--json", token=guarded.lead)) for i in ids
        ]
        if {a["status"] for a in shown} == {"completed"}:
            break
        time.sleep(0.5)
    assert {a["status"] for a in shown} == {"completed"}
    assert web_lab.ad_disabled(person.ad_dn) and web_lab.okta_status(person.okta_id) == "SUSPENDED"


def test_dry_run_changes_nothing_anywhere(web_lab: WebLab, person: ScratchPerson, guarded: Guarded) -> None:
    before = _world(web_lab, person)
    plan = _json(clampdown(guarded.config, "contain", person.upn, "-r", "what if", "--dry-run", "--json",
                           token=guarded.lead))  # fmt: skip
    assert plan["batch_id"] is None and plan["actions"] == []
    outcomes = {p["action"]: p["outcome"] for p in plan["plan"]}
    assert outcomes["ad.disable_user"] == "would change enabled from True to False"
    assert outcomes["okta.suspend_user"] == "would change status from ACTIVE to SUSPENDED"
    single = _json(clampdown(guarded.config, "act", "okta.suspend_user", person.upn, "-r", "x", "--dry-run",
                             "--json", token=guarded.lead))  # fmt: skip
    assert single[0]["outcome"] == "would change status from ACTIVE to SUSPENDED"
    listed = _json(clampdown(guarded.config, "actions", "list", "--json", token=guarded.lead))
    assert listed == []
    assert _world(web_lab, person) == before
