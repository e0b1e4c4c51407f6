"""find_person links accounts only through strong anchors (SID, UPN, login), never email, and
refuses what does not link; each account says how it was linked, down to the stored action."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import PlaybookSettings, PlaybookStep
from clampdown.connectors.base import Connector
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.errors import AccountNotFound, IdentityConflict, PermanentError
from clampdown.model import Account, ActionFilter
from clampdown.services.actions import ActionService
from clampdown.services.people import Person, find_person
from clampdown.services.playbooks import PlaybookService
from clampdown.store.actions import ActionStore
from clampdown.store.containments import ContainmentStore

S1 = "S-1-5-21-3623811015-3361044348-30300820-1104"
S2 = "S-1-5-21-3623811015-3361044348-30300820-1105"
# What each provider's own lookup compares a reference with, in order, as the real connectors do.
_LOOKUP = {
    "ad": ("userPrincipalName", "objectSid", "sAMAccountName"),
    "entra": ("userPrincipalName", "onPremisesSecurityIdentifier", "onPremisesSamAccountName"),
    "okta": ("login", "shortname", "email"),  # Okta: id, login, login shortname, then email
}


class Directory(MemoryConnector):
    """A memory directory holding exactly these accounts, looked up the way its provider does."""

    def __init__(self, provider: str, *users: dict[str, str]) -> None:
        super().__init__(MemorySettings(provider=provider))
        self.users = [
            Account(provider, u["id"], u.get("userPrincipalName") or u.get("login") or u["id"],
                    {k: v for k, v in u.items() if k != "id"})
            for u in users
        ]  # fmt: skip
        self.asked: list[str] = []

    async def resolve_user(self, reference: str) -> Account:
        self.asked.append(reference)
        for user in self.users:
            if user.id == reference:
                return user
        for attribute in _LOOKUP[self.provider]:
            hits = [u for u in self.users if _value(u, attribute) == _fold(attribute, reference)]
            if len(hits) > 1:
                raise PermanentError(f"'{reference}' matches several users", code="ambiguous")
            if hits:
                return hits[0]
        raise AccountNotFound(f"no user '{reference}'")


def _fold(attribute: str, value: str) -> str:
    return value if "Sid" in attribute or "Identifier" in attribute else value.casefold()


def _value(user: Account, attribute: str) -> str | None:
    if attribute == "shortname":
        return user.attributes.get("login", "").casefold().split("@")[0]
    value = user.attributes.get(attribute)
    return _fold(attribute, value) if value else None


def _ad(upn: str, sid: str, sam: str | None = None) -> dict[str, str]:
    return {"id": f"guid-{sid[-4:]}", "userPrincipalName": upn, "objectSid": sid,
            "sAMAccountName": sam or upn.split("@")[0]}  # fmt: skip


def _entra(upn: str, sid: str | None = None, oid: str | None = None) -> dict[str, str]:
    user = {"id": oid or f"oid-{upn}", "userPrincipalName": upn}
    if sid:
        user |= {"onPremisesSecurityIdentifier": sid, "onPremisesSamAccountName": upn.split("@")[0]}
    return user


def _okta(login: str, email: str | None = None) -> dict[str, str]:
    return {"id": f"00u-{login}", "login": login, "email": email or login}


def _world(
    ad: list[dict[str, str]], entra: list[dict[str, str]], okta: list[dict[str, str]]
) -> dict[str, Connector]:
    return {"ad": Directory("ad", *ad), "entra": Directory("entra", *entra), "okta": Directory("okta", *okta)}


def _linked(person: Person) -> dict[str, tuple[str, str]]:
    """provider -> (account name, how it was linked)."""
    return {la.account.provider: (la.account.name, la.linked_by) for la in person.accounts}


VICTIM = "victim@corp.example"
MALLORY = "mallory@corp.example"


async def test_memory_connectors_link_one_user_name_into_one_person(admin: Principal) -> None:
    connectors: dict[str, Connector] = {
        p: MemoryConnector(MemorySettings(provider=p)) for p in ("ad", "entra", "okta")
    }
    person = await find_person(connectors, "alice", admin)
    assert [la.account.id for la in person.accounts] == ["id-alice"] * 3
    ad, entra, okta = (la.account.attributes for la in person.accounts)
    assert ad["objectSid"] == entra["onPremisesSecurityIdentifier"] and ad["objectSid"].startswith(
        "S-1-5-21-"
    )
    assert ad["userPrincipalName"] == entra["userPrincipalName"] == okta["login"] == "alice@memory.test"
    linked = _linked(person)
    assert linked["ad"][1] == "matched the reference by sAMAccountName"
    assert linked["entra"][1] == (
        "matched the reference by onPremisesSamAccountName; "
        f"Entra onPremisesSecurityIdentifier = AD objectSid {ad['objectSid']}"
    )
    assert linked["okta"][1] == (
        "matched the reference by the name part of its login; "
        "Okta login = AD userPrincipalName alice@memory.test"
    )
    # The SID comes from the user name alone: another name, another SID; the same name, the same.
    bob = (await find_person(connectors, "bob@corp.example", admin)).accounts[0].account.attributes
    assert bob["objectSid"] != ad["objectSid"] and bob["userPrincipalName"] == "bob@corp.example"
    again = (await find_person(connectors, "alice", admin)).accounts[0].account.attributes
    assert again["objectSid"] == ad["objectSid"]


async def test_an_okta_email_naming_another_person_never_links_to_them(admin: Principal) -> None:
    """The issue's trap: mallory sets her Okta email to the victim's UPN."""
    connectors = _world(
        [_ad(VICTIM, S1)], [_entra(VICTIM, S1)], [_okta(VICTIM), _okta(MALLORY, email=VICTIM)]
    )
    mallory = await find_person(connectors, MALLORY, admin)
    assert _linked(mallory) == {"okta": (MALLORY, "matched the reference by login")}
    # The victim is still found as themselves, with their own Okta account.
    victim = await find_person(connectors, VICTIM, admin)
    assert {p: name for p, (name, _) in _linked(victim).items()} == {
        "ad": VICTIM,
        "entra": VICTIM,
        "okta": VICTIM,
    }


async def test_following_a_upn_into_okta_does_not_link_an_account_found_by_email(admin: Principal) -> None:
    connectors = _world([_ad(VICTIM, S1)], [_entra(VICTIM, S1)], [_okta(MALLORY, email=VICTIM)])
    person = await find_person(connectors, "victim", admin)  # the sAMAccountName: Okta finds nothing
    assert set(_linked(person)) == {"ad", "entra"}
    assert len(person.not_linked) == 1 and MALLORY in person.not_linked[0]
    assert "not linked (email never links)" in person.not_linked[0]


async def test_a_reference_matching_different_people_in_two_providers_is_refused(admin: Principal) -> None:
    """The victim has no Okta account; the reference finds mallory there by email."""
    connectors = _world([_ad(VICTIM, S1)], [_entra(VICTIM, S1)], [_okta(MALLORY, email=VICTIM)])
    with pytest.raises(IdentityConflict) as refused:
        await find_person(connectors, VICTIM, admin)
    message = refused.value.message
    assert refused.value.code == "identity_conflict"
    assert f"AD {VICTIM} (matched the reference by userPrincipalName" in message
    assert f"Okta {MALLORY} (matched the reference by email; login {MALLORY}, email {VICTIM})" in message
    assert "shares no objectSid, userPrincipalName or login" in message and "email never links" in message


async def test_disagreeing_anchors_are_refused(admin: Principal) -> None:
    """Same UPN, different SIDs: two people, whatever the names say."""
    connectors = _world([_ad("alice@corp.example", S1)], [_entra("alice@corp.example", S2)], [])
    with pytest.raises(IdentityConflict) as refused:
        await find_person(connectors, "alice@corp.example", admin)
    assert f"AD objectSid {S1} ≠ Entra onPremisesSecurityIdentifier {S2}" in refused.value.message


async def test_a_login_that_names_someone_else_is_refused(admin: Principal) -> None:
    """'alice' is AD's alice@corp.example but Okta's alice@other.example: not one person."""
    connectors = _world([_ad("alice@corp.example", S1)], [], [_okta("alice@other.example")])
    with pytest.raises(IdentityConflict) as refused:
        await find_person(connectors, "alice", admin)
    message = refused.value.message
    assert "AD alice@corp.example (matched the reference by sAMAccountName" in message
    assert "Okta alice@other.example (matched the reference by the name part of its login" in message


async def test_anchors_leading_to_two_accounts_in_one_provider_are_refused(admin: Principal) -> None:
    """AD's UPN names a cloud-only Entra user, its SID another (synced) one."""
    connectors = _world(
        [_ad("alice@corp.example", S1, sam="alice")],
        [
            _entra("alice@corp.example"),
            _entra("alice.synced@corp.example", S1) | {"onPremisesSamAccountName": "x"},
        ],
        [],
    )
    with pytest.raises(IdentityConflict) as refused:
        await find_person(connectors, "alice", admin)
    assert "lead to 2 different Entra accounts" in refused.value.message


async def test_a_person_in_ad_only(admin: Principal) -> None:
    connectors = _world([_ad("carol@corp.example", S1)], [_entra(VICTIM, S2)], [_okta(MALLORY)])
    person = await find_person(connectors, "carol", admin)
    assert _linked(person) == {"ad": ("carol@corp.example", "matched the reference by sAMAccountName")}
    assert person.unreachable == {} and person.not_linked == []


async def test_sid_links_ad_and_entra_whose_upns_differ(admin: Principal) -> None:
    """A non-routable AD UPN suffix: the SID links, and Okta links to Entra's UPN."""
    connectors = _world(
        [_ad("dave@corp.local", S1)], [_entra("dave@corp.example", S1)], [_okta("dave@corp.example")]
    )
    person = await find_person(connectors, "dave@corp.local", admin)
    assert _linked(person) == {
        "ad": ("dave@corp.local", "matched the reference by userPrincipalName"),
        "entra": ("dave@corp.example", f"Entra onPremisesSecurityIdentifier = AD objectSid {S1}"),
        "okta": ("dave@corp.example", "Okta login = Entra userPrincipalName dave@corp.example"),
    }
    entra = connectors["entra"]
    assert isinstance(entra, Directory) and entra.asked == ["dave@corp.local", S1]  # by SID, exactly


async def test_upns_and_logins_compare_ignoring_case(admin: Principal) -> None:
    connectors = _world([_ad("Erin@Corp.Example", S1, sam="erin")], [], [_okta("erin@corp.example")])
    person = await find_person(connectors, "erin", admin)
    assert _linked(person)["okta"] == (
        "erin@corp.example",
        "matched the reference by the name part of its login; "
        "Okta login = AD userPrincipalName Erin@Corp.Example",
    )
    # SIDs compare exactly: a SID differing in case is another value (and Entra finds no one by it).
    lower = _world([_ad("frank@corp.example", S1)], [_entra("frank.cloud@corp.example", S1.lower())], [])
    assert set(_linked(await find_person(lower, "frank@corp.example", admin))) == {"ad"}


async def test_the_plan_and_the_stored_actions_say_how_each_account_was_linked(
    engine: AsyncEngine, admin: Principal
) -> None:
    connectors = _world(
        [_ad("dave@corp.local", S1)], [_entra("dave@corp.example", S1)], [_okta("dave@corp.example")]
    )
    steps = [PlaybookStep(action="ad.disable_user"), PlaybookStep(action="entra.suspend_user"),
             PlaybookStep(action="okta.suspend_user")]  # fmt: skip
    store = ActionStore(engine)
    service = ActionService(store, connectors)
    playbooks = PlaybookService(service, {"contain": PlaybookSettings(steps=steps)}, ContainmentStore(store))
    dry = await playbooks.run("contain", "dave@corp.local", "INC-1", admin, dry_run=True)
    assert {p.provider: p.linked_by for p in dry.plan} == {
        "ad": "matched the reference by userPrincipalName",
        "entra": f"Entra onPremisesSecurityIdentifier = AD objectSid {S1}",
        "okta": "Okta login = Entra userPrincipalName dave@corp.example",
    }
    run = await playbooks.run("contain", "dave@corp.local", "INC-1", admin)
    stored = [await service.store.get(a.id) for a in run.actions]
    assert {a.provider: a.account.linked_by for a in stored if a.account} == {
        p.provider: p.linked_by for p in dry.plan
    }


async def test_a_refused_reference_queues_nothing(engine: AsyncEngine, admin: Principal) -> None:
    connectors = _world([_ad(VICTIM, S1)], [_entra(VICTIM, S1)], [_okta(MALLORY, email=VICTIM)])
    store = ActionStore(engine)
    service = ActionService(store, connectors)
    playbooks = PlaybookService(
        service,
        {"contain": PlaybookSettings(steps=[PlaybookStep(action="ad.disable_user")])},
        ContainmentStore(store),
    )
    before = await service.store.list_actions(ActionFilter(), limit=100)
    with pytest.raises(IdentityConflict):
        await playbooks.run("contain", VICTIM, "INC-2", admin)
    assert await service.store.list_actions(ActionFilter(), limit=100) == before


def test_an_account_stored_before_links_were_recorded_still_loads() -> None:
    old = Account.from_json({"provider": "ad", "id": "g", "name": "n", "attributes": {"dn": "CN=n"}})
    assert old.linked_by is None
    linked = Account("ad", "g", "n", {"dn": "CN=n"}, linked_by="matched the reference by sAMAccountName")
    assert Account.from_json(linked.to_json()) == linked and Account.from_json(linked.to_json()).linked_by
    assert linked == old  # how it was linked is provenance, not identity
