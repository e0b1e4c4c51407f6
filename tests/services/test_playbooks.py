"""Playbooks (services/playbooks.py): contain a person everywhere in the hybrid-safe order, plan it
without writing, schedule a timed release, and release exactly what the containment changed."""

from __future__ import annotations

from datetime import timedelta

from clampdown.auth.principal import Principal
from clampdown.limits import MAX_ACCOUNT_ID
from clampdown.model import Account, ActionContext, ActionFilter, ActionStatus
from tests.services.conftest import Services

CONTAIN_STEPS = [
    "ad.disable_user",
    "ad.force_password_reset",
    "ad.remove_privileged_groups",
    "entra.suspend_user",
    "entra.revoke_sessions",
    "entra.mark_compromised",
    "entra.remove_auth_methods",
    "entra.disable_devices",
    "okta.suspend_user",
    "okta.clear_sessions",
    "okta.revoke_grants",
    "okta.reset_factors",
]
# Steps that take something no inverse gives back: a release lists them as not restored.
NOT_RESTORED = [
    "entra.revoke_sessions", "entra.remove_auth_methods", "okta.clear_sessions", "okta.revoke_grants",
    "okta.reset_factors",
]  # fmt: skip


async def _stored(services: Services) -> list[tuple[str, ActionStatus]]:
    found = await services.store.list_actions(ActionFilter(), limit=1000)
    return sorted((a.type, a.status) for a in found)


async def test_contain_queues_every_step_in_order_with_its_links(
    services: Services, admin: Principal
) -> None:
    run = await services.playbooks.run("contain", "ivan", "INC-42", admin)
    assert run.skipped == [] and run.batch_id is not None
    stored = [await services.store.get(a.id) for a in run.actions]
    assert [a.type for a in stored] == CONTAIN_STEPS
    assert {(a.status, a.batch_id, a.playbook, a.reason) for a in stored} == {
        (ActionStatus.QUEUED, run.batch_id, "contain", "INC-42")
    }
    ids = {a.type: a.id for a in stored}
    # Sign-in blocked first, then sessions ended, then what the attacker may have added taken away.
    assert [a.after_action_id for a in stored] == [
        None, ids["ad.disable_user"], ids["ad.disable_user"], ids["ad.disable_user"],
        ids["entra.suspend_user"], None, ids["entra.revoke_sessions"], ids["entra.revoke_sessions"],
        None, ids["okta.suspend_user"], ids["okta.clear_sessions"], ids["okta.clear_sessions"],
    ]  # fmt: skip
    assert [a.account.provider if a.account else None for a in stored] == [
        "ad", "ad", "ad", "entra", "entra", "entra", "entra", "entra", "okta", "okta", "okta", "okta"
    ]  # fmt: skip


async def test_a_step_whose_provider_the_person_lacks_is_skipped(
    services: Services, admin: Principal
) -> None:
    services.directories["okta"].absent.add("ivan")
    run = await services.playbooks.run("contain", "ivan", "INC-42", admin)
    okta = [t for t in CONTAIN_STEPS if t.startswith("okta.")]
    assert run.skipped == [f"{t}: ivan has no okta account" for t in okta]
    assert await _stored(services) == sorted((t, ActionStatus.QUEUED) for t in CONTAIN_STEPS if t not in okta)


async def test_a_dry_run_plans_every_step_and_writes_nothing(services: Services, admin: Principal) -> None:
    run = await services.playbooks.run("contain", "ivan", "INC-42", admin, dry_run=True)
    assert run.batch_id is None and run.actions == []
    assert [p.action for p in run.plan] == CONTAIN_STEPS
    assert run.plan[0].outcome == "would change enabled from True to False"
    assert await _stored(services) == []
    assert (await services.audit.verify()).entries == 0


async def test_until_queues_a_timed_undo_for_every_step(services: Services, admin: Principal) -> None:
    until = services.actions.clock.now() + timedelta(hours=8)
    run = await services.playbooks.run("lockout", "ivan", "INC-42", admin, until=until)
    steps, undos = run.actions[:3], run.actions[3:]
    assert [a.type for a in undos] == ["ad.enable_user", "entra.enable_user", "okta.unsuspend_user"]
    for step, undo in zip(steps, undos, strict=True):
        stored = await services.store.get(undo.id)
        assert (stored.undoes_action_id, stored.after_action_id) == (step.id, step.id)
        assert stored.status is ActionStatus.QUEUED and stored.available_at == until


async def test_until_releases_what_has_an_inverse_and_names_what_has_none(
    services: Services, admin: Principal
) -> None:
    # contain ends sessions and removes methods and grants, which have no inverse: they run, and
    # are not undone later.
    until = services.actions.clock.now() + timedelta(hours=8)
    run = await services.playbooks.run("contain", "ivan", "INC-42", admin, until=until)
    assert run.notes == [f"{t} has no inverse: it is not undone at {until.isoformat()}" for t in NOT_RESTORED]
    by_id = {a.id: a for a in run.actions}
    timers = [a for a in run.actions if a.undoes_action_id is not None]
    assert sorted(by_id[t.undoes_action_id or 0].type for t in timers) == sorted(
        t for t in CONTAIN_STEPS if t not in NOT_RESTORED
    )
    assert {t.available_at for t in timers} == {until}


async def test_release_undoes_exactly_what_the_containment_changed(
    services: Services, admin: Principal
) -> None:
    ad = services.directories["ad"]
    already = Account("ad", "id-ivan", "ivan")
    await ad.disable_user(already, ActionContext(action_id=0, reason="earlier", requested_by="test"))
    contained = await services.playbooks.run("contain", "ivan", "INC-42", admin)
    await services.drain()
    by_type = {a.type: await services.store.get(a.id) for a in contained.actions}
    assert by_type["ad.disable_user"].changed is False  # it was disabled before the containment

    release = await services.playbooks.run("release", "ivan", "false positive", admin)
    undoes = {(await services.store.get(a.id)).undoes_action_id: a.type for a in release.actions}
    assert undoes == {
        by_type["ad.force_password_reset"].id: "ad.clear_password_reset",
        by_type["ad.remove_privileged_groups"].id: "ad.restore_privileged_groups",
        by_type["entra.suspend_user"].id: "entra.enable_user",
        by_type["entra.mark_compromised"].id: "entra.dismiss_user_risk",
        by_type["entra.disable_devices"].id: "entra.enable_devices",
        by_type["okta.suspend_user"].id: "okta.unsuspend_user",
    }
    # The AD disable changed nothing; what ended sessions or took methods and grants cannot be
    # given back, and the release says so with what each step took.
    assert release.skipped[0] == f"ad.disable_user (action {by_type['ad.disable_user'].id}): nothing to undo"
    assert release.skipped[1:] == [
        f"{t} (action {by_type[t].id}): cannot be restored: {by_type[t].result['message']}"  # type: ignore[index]
        for t in NOT_RESTORED
    ]
    await services.drain()
    released = await services.store.get_many([a.id for a in release.actions])
    assert {a.status for a in released.values()} == {ActionStatus.COMPLETED}
    states = {}
    for provider, directory in services.directories.items():
        states[provider] = (await directory.read_state(await directory.resolve_user("ivan"))).values
    baseline = {"must_change_password": False, "riskLevel": "none", "privileged_groups_removed": False}
    assert states["ad"] == {"enabled": False, **baseline}  # as before
    assert states["entra"] == {"enabled": True, **baseline}
    assert states["okta"]["enabled"] is True


async def test_an_account_id_longer_than_its_column_is_held_and_released(
    services: Services, admin: Principal
) -> None:
    # A provider may hand back ids longer than the lookup column: stored hashed to fit, found again.
    person = "p" + "x" * 400
    first = await services.playbooks.run("lockout", person, "INC-1", admin)
    await services.drain()
    account = f"id-{person}"
    assert len(account) > MAX_ACCOUNT_ID
    found = await services.playbooks.containments.find(account_ids=[account])
    assert [c.id for c in found] == [first.containment_id]
    assert set(await services.playbooks.containments.active_holders([account])) == {account}
    second = await services.playbooks.run("lockout", person, "INC-2", admin, until=None)
    await services.drain()
    assert (await services.playbooks.containments.active_holders([account]))[account] == [
        second.containment_id
    ]  # the newer one superseded the first, by the same hashed key
    release = await services.playbooks.run("release", person, "false positive", admin)
    await services.drain()
    assert {(await services.store.get(a.id)).status for a in release.actions} == {ActionStatus.COMPLETED}
    assert await services.playbooks.containments.active_holders([account]) == {}
    ad = services.directories["ad"]
    assert (await ad.read_state(await ad.resolve_user(person))).values["enabled"] is True
