"""The containment watch (services/watch.py): a step undone outside Clampdown while its
containment is active is seen in one pass, audited, noted once, and, where the playbook says so,
applied again to the same account through the policy gate; release still restores the state
before the first containment."""

from __future__ import annotations

from collections import Counter

import pytest

from clampdown.auth.principal import Principal
from clampdown.config import PlaybookSettings, ProtectionSettings, WatchSettings
from clampdown.errors import TransientError
from clampdown.model import Account, AccountState, ActionContext, ActionStatus, StepRole
from clampdown.policy import PolicyGate
from clampdown.services.watch import WATCH, ContainmentWatch
from tests.services.conftest import LOCKOUT, Services

OUTSIDE = ActionContext(action_id=0, reason="a directory sync", requested_by="someone else")


def _watch(services: Services) -> ContainmentWatch:
    return ContainmentWatch(
        services.actions, services.playbooks.containments, services.playbooks.playbooks, WatchSettings()
    )


async def _events(services: Services, name: str) -> list[dict[str, object]]:
    return [r async for r in services.audit.rows() if r["event"] == name]


async def _state(services: Services, provider: str, person: str) -> AccountState:
    directory = services.directories[provider]
    return await directory.read_state(await directory.resolve_user(person))


async def test_a_reenabled_account_is_contained_again_and_release_restores_the_first_state(
    services: Services, admin: Principal
) -> None:
    run = await services.playbooks.run("contain", "ivan", "INC-7", admin)
    await services.drain()
    watch = _watch(services)
    assert (await watch.run_once()).drifts == []  # nothing changed: nothing to say

    ad = services.directories["ad"]
    await ad.enable_user(Account("ad", "id-ivan", "ivan"), OUTSIDE)  # a sync turns it back on
    found = await watch.run_once()
    assert [(d.step.type, d.key, d.found) for d in found.drifts] == [("ad.disable_user", "enabled", True)]
    assert [(a.type, a.requested_by, a.containment_role) for a in found.reapplied] == [
        ("ad.disable_user", WATCH, StepRole.STEP)
    ]
    again = found.reapplied[0]
    step = next(a for a in run.actions if a.type == "ad.disable_user")
    assert again.account == (await services.store.get(step.id)).account  # the same one, not resolved again
    assert again.containment_id == run.containment_id
    await services.drain()
    assert (await _state(services, "ad", "ivan")).enabled is False
    assert (await services.store.get(again.id)).status is ActionStatus.COMPLETED

    containment = await services.playbooks.containments.get(run.containment_id or 0)
    assert [n for n in containment.notes if n.startswith("drift")] == [found.drifts[0].note]
    drifted = await _events(services, "containment.drifted")
    assert len(drifted) == 1 and drifted[0]["actor"] == "watch"
    assert (await watch.run_once()).drifts == []  # held again: no second alert

    release = await services.playbooks.run("release", "ivan", "false positive", admin)
    await services.drain()
    undone = Counter(a.type for a in release.actions)
    assert undone["ad.enable_user"] == 1  # the step and its re-application are undone once
    assert (await _state(services, "ad", "ivan")).enabled is True
    assert (await watch.run_once()).containments == 0  # released: no longer watched


async def test_alert_only_notes_the_drift_once_and_changes_nothing(
    services: Services, admin: Principal
) -> None:
    await services.playbooks.run("lockout", "olga", "INC-8", admin)  # on_drift defaults to alert
    await services.drain()
    okta = services.directories["okta"]
    await okta.unsuspend_user(Account("okta", "id-olga", "olga"), OUTSIDE)
    watch = _watch(services)
    first = await watch.run_once()
    assert [d.step.type for d in first.drifts] == ["okta.suspend_user"] and first.reapplied == []
    second = await watch.run_once()
    assert len(second.drifts) == 1 and second.reapplied == []  # still drifted, but noted already
    assert len(await _events(services, "containment.drifted")) == 1
    assert (await _state(services, "okta", "olga")).enabled is True  # alert only: left as found


async def test_a_protected_account_applied_again_waits_for_approval(
    services: Services, admin: Principal
) -> None:
    await services.playbooks.run("contain", "pete", "INC-9", admin)
    await services.drain()
    # Protected since: the watch asks the gate as it stands now, as any request would.
    gate = services.actions.guardrails
    assert gate is not None
    services.actions.guardrails = PolicyGate(ProtectionSettings(accounts=["pete"]), gate.approvals)
    await services.directories["entra"].enable_user(Account("entra", "id-pete", "pete"), OUTSIDE)
    found = await _watch(services).run_once()
    assert [a.status for a in found.reapplied] == [ActionStatus.AWAITING_APPROVAL]
    assert "protected" in (found.reapplied[0].approval_reason or "")
    await services.drain()
    assert (await _state(services, "entra", "pete")).enabled is True  # not before a person approves


async def test_an_unreadable_account_is_reported_and_the_others_still_checked(
    services: Services, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.playbooks.run("contain", "rita", "INC-10", admin)
    await services.drain()
    okta = services.directories["okta"]

    async def down(account: Account) -> AccountState:
        raise TransientError("okta: 503 Service Unavailable")

    monkeypatch.setattr(okta, "read_state", down)
    await services.directories["ad"].enable_user(Account("ad", "id-rita", "rita"), OUTSIDE)
    found = await _watch(services).run_once()
    assert found.unreadable == {"okta:id-rita": "okta: 503 Service Unavailable"}
    assert [d.step.type for d in found.drifts] == ["ad.disable_user"]


async def test_a_playbook_names_alert_or_recontain_only() -> None:
    with pytest.raises(ValueError, match="on_drift"):
        PlaybookSettings.model_validate({"steps": LOCKOUT.steps, "on_drift": "ignore"})


async def test_a_value_the_connector_does_not_report_is_never_taken_for_drift(
    services: Services, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    await services.playbooks.run("contain", "sam", "INC-12", admin)
    await services.drain()
    entra = services.directories["entra"]
    real = entra.read_state

    async def without_risk(account: Account) -> AccountState:
        state = await real(account)
        values = {k: v for k, v in state.values.items() if k != "riskLevel"}
        return AccountState(state.enabled, state.status, values)

    monkeypatch.setattr(entra, "read_state", without_risk)  # e.g. Okta without user_risk
    found = await _watch(services).run_once()
    assert found.drifts == [] and found.reapplied == []
