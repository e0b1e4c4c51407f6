"""Several directories of one kind (issue 17): actions routed to the directory that holds the
account and recorded with it; a migrated account linked to the one it came from through its
sIDHistory; two people who share a display name never merged; a reference that names different
people in different directories refused with what each found; a playbook acting on every account
of the person; and a configuration with one directory per kind working as before."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import EngineSettings, PlaybookSettings, PlaybookStep
from clampdown.connectors.base import Connector
from clampdown.engine.worker import Worker
from clampdown.errors import IdentityConflict, InvalidInput, TransientError
from clampdown.model import Account, ActionFilter, ActionStatus
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.services.people import find_person
from clampdown.services.planning import plan_actions
from clampdown.services.playbooks import PlaybookService
from clampdown.store.actions import ActionStore
from clampdown.store.containments import ContainmentStore
from clampdown.web.person_view import person_view
from clampdown.web.templating import directory_of
from tests.services.test_people import _LOOKUP, Directory, _entra, _okta

FAST = EngineSettings(poll_interval_seconds=0.02, backoff_base_seconds=0.01, backoff_max_seconds=0.02)
CORP = "S-1-5-21-1111111111-1111111111-1111111111"
EMEA = "S-1-5-21-2222222222-2222222222-2222222222"
ALICE_CORP, ALICE_EMEA = f"{CORP}-1104", f"{EMEA}-1201"  # Alice was migrated from CORP to EMEA
BOB, BOB_EMEA = f"{CORP}-1105", f"{EMEA}-1202"  # two different people called Bob Nguyen


class Forest(Directory):
    """An AD directory that finds a SID in objectSid or sIDHistory, as the AD connector does."""

    async def resolve_user(self, reference: str) -> Account:
        for user in self.users:
            if reference in user.attributes.get("sIDHistory", "").split():
                self.asked.append(reference)
                return user
        return await super().resolve_user(reference)


def _ad(guid: str, upn: str, sid: str, sam: str, display: str, history: str = "") -> dict[str, str]:
    user = {"id": guid, "userPrincipalName": upn, "objectSid": sid, "sAMAccountName": sam,
            "displayName": display}  # fmt: skip
    return user | ({"sIDHistory": history} if history else {})


def _directories() -> dict[str, Connector]:
    return {
        "corp-ad": Forest(
            "ad",
            _ad("g-alice-corp", "alice@corp.example", ALICE_CORP, "alice", "Alice Martin"),
            _ad("g-bob-corp", "bob@corp.example", BOB, "bob", "Bob Nguyen"),
            _ad("g-sam-corp", "sam@corp.example", f"{CORP}-1106", "sam", "Sam One"),
        ),
        "emea-ad": Forest(
            "ad",
            _ad("g-alice-emea", "alice@emea.example", ALICE_EMEA, "alice.m", "Alice Martin", ALICE_CORP),
            _ad("g-bob-emea", "bnguyen@emea.example", BOB_EMEA, "bnguyen", "Bob Nguyen"),
            _ad("g-sam-emea", "sam@emea.example", f"{EMEA}-1207", "sam", "Sam Two"),
            _ad("g-lena", "lena@emea.example", f"{EMEA}-1203", "lena", "Lena Fischer"),
        ),
        "entra": Directory("entra", _entra("alice@corp.example", ALICE_CORP, "oid-alice")),
        # The second tenant is synced from the second forest: it knows Alice by her new SID only.
        "emea-entra": Directory("entra", _entra("alice@emea.example", ALICE_EMEA, "oid-alice-emea")),
        "okta": Directory("okta", _okta("alice@corp.example")),
    }


def _service(engine: AsyncEngine, connectors: dict[str, Connector]) -> tuple[ActionStore, ActionService]:
    store = ActionStore(engine)
    return store, ActionService(store, connectors)


async def _drain(store: ActionStore, connectors: dict[str, Connector]) -> None:
    await Worker(store, connectors, FAST).run(until_drained=True)


async def _enabled(connector: Connector, guid: str) -> bool | None:
    account = next(u for u in connector.users if u.id == guid)  # type: ignore[attr-defined]
    return (await connector.read_state(account)).enabled


def test_the_ad_lookup_of_the_test_directories_is_the_real_ones() -> None:
    assert _LOOKUP["ad"] == ("userPrincipalName", "objectSid", "sAMAccountName")


async def test_an_action_runs_in_the_directory_that_holds_the_account(
    engine: AsyncEngine, admin: Principal
) -> None:
    connectors = _directories()
    store, service = _service(engine, connectors)
    action = await service.request("ad.disable_user", "lena@emea.example", "INC-7", admin)
    assert action.instance == "emea-ad" and action.account and action.account.where == "emea-ad"
    await _drain(store, connectors)
    done = await store.get(action.id)
    assert done.status is ActionStatus.COMPLETED and done.instance == "emea-ad"
    assert await _enabled(connectors["emea-ad"], "g-lena") is False
    assert connectors["corp-ad"].calls == 0  # type: ignore[attr-defined]


async def test_a_reference_held_by_two_directories_is_refused_until_one_is_named(
    engine: AsyncEngine, admin: Principal
) -> None:
    connectors = _directories()
    store, service = _service(engine, connectors)
    with pytest.raises(IdentityConflict) as refused:
        await service.request("ad.disable_user", "sam", "INC-8", admin)
    message = refused.value.message
    assert "corp-ad: sam@corp.example (g-sam-corp)" in message
    assert "emea-ad: sam@emea.example (g-sam-emea)" in message
    named = await service.request("ad.disable_user", "sam", "INC-8", admin, instance="emea-ad")
    await _drain(store, connectors)
    assert (await store.get(named.id)).status is ActionStatus.COMPLETED
    assert await _enabled(connectors["emea-ad"], "g-sam-emea") is False
    assert await _enabled(connectors["corp-ad"], "g-sam-corp") is True
    with pytest.raises(InvalidInput, match="'entra' is not a configured ad directory; configured: corp-ad"):
        await service.request("ad.disable_user", "sam", "INC-8", admin, instance="entra")
    with pytest.raises(InvalidInput, match="'nope' is not a configured ad directory"):
        await service.request("ad.disable_user", "sam", "INC-8", admin, instance="nope")


async def test_a_bulk_finds_each_targets_directory_and_says_which_it_could_not(
    engine: AsyncEngine, admin: Principal
) -> None:
    """With several directories of the kind and none named, each target's directory is found as a
    single request finds it: one in several, or in none, is not queued, and the answer says why."""
    connectors = _directories()
    store, service = _service(engine, connectors)
    bulk = await service.request_bulk("ad.disable_user", ["lena", "sam", "nobody", "bob"], "INC-9", admin)
    assert sorted((a.target, a.instance) for a in bulk.actions) == [("bob", "corp-ad"), ("lena", "emea-ad")]
    refused = {r.target: r.reason for r in bulk.refused}
    assert refused.keys() == {"sam", "nobody"}
    assert "names accounts in 2 ad directories" in refused["sam"] and "no such user" in refused["nobody"]
    await _drain(store, connectors)
    assert await _enabled(connectors["emea-ad"], "g-lena") is False
    assert await _enabled(connectors["corp-ad"], "g-bob-corp") is False
    assert await _enabled(connectors["corp-ad"], "g-sam-corp") is True
    with pytest.raises(InvalidInput, match="none of the 2 targets can be acted on: sam: "):
        await service.request_bulk("ad.disable_user", ["sam", "nobody"], "INC-9", admin)
    # Scoped to one forest, the bulk is for that forest: the worker resolves each target there.
    emea = Principal.from_roles("lea", frozenset({GLOBAL_ADMINISTRATOR}), {}, scope=frozenset({"emea-ad"}))
    scoped = await service.request_bulk("ad.disable_user", ["sam", "bob"], "INC-9", emea)
    assert {a.instance for a in scoped.actions} == {"emea-ad"} and scoped.refused == []


async def test_the_migrated_person_is_one_person_and_the_look_alike_another(admin: Principal) -> None:
    connectors = _directories()
    alice = await find_person(connectors, "alice@corp.example", admin)
    linked = {la.account.where: la for la in alice.accounts}
    assert set(linked) == {"corp-ad", "emea-ad", "entra", "emea-entra", "okta"}
    assert linked["emea-ad"].account.id == "g-alice-emea"
    assert f"AD (emea-ad) sIDHistory = AD (corp-ad) objectSid {ALICE_CORP}" in linked["emea-ad"].linked_by
    # From the migrated account's own name, the same four accounts.
    again = await find_person(connectors, "alice@emea.example", admin)
    assert {la.account.id for la in again.accounts} == {la.account.id for la in alice.accounts}
    # Same display name, nothing else in common: never merged.
    bob = await find_person(connectors, "bob@corp.example", admin)
    assert [la.account.id for la in bob.accounts] == ["g-bob-corp"]
    look_alike = await find_person(connectors, "bnguyen@emea.example", admin)
    assert [la.account.id for la in look_alike.accounts] == ["g-bob-emea"]


async def test_a_reference_that_names_two_people_in_two_directories_is_refused(admin: Principal) -> None:
    with pytest.raises(IdentityConflict) as refused:
        await find_person(_directories(), "sam", admin)
    message = refused.value.message
    assert "AD (corp-ad) sam@corp.example" in message and "AD (emea-ad) sam@emea.example" in message
    assert "Nothing was done" in message


async def test_contain_acts_on_both_accounts_of_the_migrated_person(
    engine: AsyncEngine, admin: Principal
) -> None:
    connectors = _directories()
    store, service = _service(engine, connectors)
    steps = [PlaybookStep(action="ad.disable_user"),
             PlaybookStep(action="ad.force_password_reset", after="ad.disable_user"),
             PlaybookStep(action="entra.suspend_user", after="ad.disable_user"),
             PlaybookStep(action="okta.suspend_user")]  # fmt: skip
    playbooks = PlaybookService(service, {"contain": PlaybookSettings(steps=steps)}, ContainmentStore(store))
    run = await playbooks.run("contain", "alice@corp.example", "INC-9", admin)
    placed = sorted((a.type, a.instance) for a in run.actions)
    assert placed == [("ad.disable_user", "corp-ad"), ("ad.disable_user", "emea-ad"),
                      ("ad.force_password_reset", "corp-ad"), ("ad.force_password_reset", "emea-ad"),
                      ("entra.suspend_user", "emea-entra"), ("entra.suspend_user", "entra"),
                      ("okta.suspend_user", "okta")]  # fmt: skip
    by = {(a.type, a.instance): a for a in run.actions}
    # Each reset comes after the disable in its own forest; each tenant's suspend after the disable
    # of the AD account its user is synced from.
    assert by["ad.force_password_reset", "emea-ad"].after_action_id == by["ad.disable_user", "emea-ad"].id
    assert by["ad.force_password_reset", "corp-ad"].after_action_id == by["ad.disable_user", "corp-ad"].id
    assert by["entra.suspend_user", "entra"].after_action_id == by["ad.disable_user", "corp-ad"].id
    assert by["entra.suspend_user", "emea-entra"].after_action_id == by["ad.disable_user", "emea-ad"].id
    await _drain(store, connectors)
    assert await _enabled(connectors["corp-ad"], "g-alice-corp") is False
    assert await _enabled(connectors["emea-ad"], "g-alice-emea") is False
    released = await playbooks.run("release", "alice@corp.example", "false positive", admin)
    assert sorted((a.type, a.instance) for a in released.actions if a.type.startswith("ad.enable")) == [
        ("ad.enable_user", "corp-ad"), ("ad.enable_user", "emea-ad")]  # fmt: skip
    await _drain(store, connectors)
    assert await _enabled(connectors["corp-ad"], "g-alice-corp") is True
    assert await _enabled(connectors["emea-ad"], "g-alice-emea") is True


async def test_one_directory_per_kind_works_as_before_whatever_its_section_is_called(
    engine: AsyncEngine, admin: Principal
) -> None:
    before = {"ad": Forest("ad", _ad("g-lena", "lena@corp.example", f"{CORP}-1300", "lena", "Lena"))}
    store, service = _service(engine, before)
    action = await service.request("ad.disable_user", "lena", "INC-10", admin)
    assert action.instance == "ad"
    # The section is renamed ([providers.corp-ad] kind = "ad"): the recorded action still runs there.
    after = {"corp-ad": before["ad"]}
    await _drain(store, after)
    assert (await store.get(action.id)).status is ActionStatus.COMPLETED
    assert await _enabled(after["corp-ad"], "g-lena") is False


async def test_a_renamed_directory_is_paced_and_measured_under_its_name_now(
    engine: AsyncEngine, admin: Principal
) -> None:
    """An action recorded under the old section name runs in the renamed one, in its lane: its
    concurrency setting and its metrics label are the directory's name as configured now."""
    from prometheus_client import REGISTRY

    before = {"ad": Forest("ad", _ad("g-kai", "kai@corp.example", f"{CORP}-1301", "kai", "Kai"))}
    store, service = _service(engine, before)
    action = await service.request("ad.disable_user", "kai", "INC-11", admin)
    assert action.instance == "ad"
    after = {"corp-ad": before["ad"]}

    def calls(provider: str) -> float:
        labels = {"provider": provider, "step": "perform"}
        return REGISTRY.get_sample_value("clampdown_provider_call_seconds_count", labels) or 0.0

    counted = calls("corp-ad"), calls("ad")
    worker = Worker(store, after, FAST.model_copy(update={"provider_concurrency": {"corp-ad": 1}}))
    await worker.run(until_drained=True)
    assert (await store.get(action.id)).status is ActionStatus.COMPLETED
    assert (calls("corp-ad"), calls("ad")) == (counted[0] + 1, counted[1])
    assert {n: lane.free for n, lane in worker._lanes.items()} == {"corp-ad": 1}  # all free again


async def test_the_console_names_the_directory_of_each_account_and_acts_there(admin: Principal) -> None:
    shown = person_view(await find_person(_directories(), "alice@corp.example", admin), [])
    cards = {a.where: a for a in shown.accounts}
    assert cards["emea-ad"].provider_title == "Active Directory (emea-ad)"
    assert cards["corp-ad"].provider_title == "Active Directory (corp-ad)"
    assert cards["entra"].provider_title == "Entra ID"  # the directory named after its kind: as before
    disable = next(c for c in cards["emea-ad"].actions if c.id == "ad.disable_user")
    assert disable.instance == "emea-ad" and disable.account_name == "alice@emea.example"


async def test_the_action_center_names_the_directory_an_action_ran_in(
    engine: AsyncEngine, admin: Principal
) -> None:
    connectors = _directories()
    _, service = _service(engine, connectors)
    action = await service.request("ad.disable_user", "lena@emea.example", "INC-11", admin)
    assert directory_of(action) == "Active Directory (emea-ad)"
    assert directory_of(action.account) == "Active Directory (emea-ad)"
    _, one = _service(engine, {"ad": connectors["corp-ad"]})
    alone = await one.request("ad.disable_user", "bob", "x", admin)
    assert directory_of(alone) == "Active Directory"  # one directory of its kind: as before
    listed = await service.list_actions(ActionFilter(instance="emea-ad"), admin)
    assert [a.id for a in listed] == [action.id]


async def test_a_dry_run_finds_the_directory_of_each_target(engine: AsyncEngine, admin: Principal) -> None:
    connectors = _directories()
    _, service = _service(engine, connectors)
    targets = ["lena@emea.example", "sam", "nobody"]
    plan = await plan_actions(service, "ad.disable_user", targets, "INC-12", admin)
    by_target = {p.target: p for p in plan}
    assert by_target["lena@emea.example"].outcome == "would change enabled from True to False"
    assert by_target["sam"].outcome.startswith("refused: 'sam' names accounts in 2 ad directories")
    assert by_target["nobody"].outcome == "refused: no such user"
    named = await plan_actions(service, "ad.disable_user", ["sam"], "INC-12", admin, instance="corp-ad")
    assert named[0].account == "sam@corp.example"
    assert connectors["emea-ad"].calls == connectors["corp-ad"].calls == 0  # type: ignore[attr-defined]


class Down(Forest):
    async def resolve_user(self, reference: str) -> Account:
        raise TransientError("ldaps://dc1.emea.example:636 did not answer", code="ad_unreachable")


async def test_a_directory_that_does_not_answer_is_never_guessed_past(
    engine: AsyncEngine, admin: Principal
) -> None:
    connectors = _directories()
    connectors["emea-ad"] = Down("ad")
    _, service = _service(engine, connectors)
    with pytest.raises(InvalidInput) as refused:
        await service.request("ad.disable_user", "bob@corp.example", "INC-13", admin)
    assert "emea-ad could not be asked (ldaps://dc1.emea.example:636 did not answer)" in refused.value.message
    assert "found in corp-ad: bob@corp.example (g-bob-corp)" in refused.value.message
    named = await service.request("ad.disable_user", "bob@corp.example", "INC-13", admin, instance="corp-ad")
    assert named.instance == "corp-ad" and named.account is not None
