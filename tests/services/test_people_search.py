"""The people search's merging, ranking, paging and time bounds, over small in-test directories
(the real directories' searches are tested in tests/ad, tests/entra and tests/okta)."""

from __future__ import annotations

import asyncio
import time
from typing import cast

import pytest

from clampdown.auth.principal import Principal
from clampdown.connectors.base import Connector, FoundUser
from clampdown.errors import Forbidden, InvalidInput, TransientError
from clampdown.model import Account
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_READER
from clampdown.services.people_search import Rank, search_people

ADMIN = Principal.from_roles("analyst", frozenset({GLOBAL_ADMINISTRATOR}), {})
SID_ALICE = "S-1-5-21-1-2-3-1104"
SID_OTHER = "S-1-5-21-1-2-3-1999"


class Directory:
    """A directory that finds its users by a case-insensitive substring of their display name."""

    def __init__(self, provider: str, users: list[FoundUser], delay: float = 0.0, fail: bool = False) -> None:
        self.provider = provider
        self.users = users
        self.delay = delay
        self.fail = fail
        self.asked = 0

    async def search_users(self, text: str, limit: int) -> list[FoundUser]:
        self.asked += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise TransientError("the directory timed out", code="provider_timeout")
        found = [
            u for u in self.users if text.casefold() in (u.display_name + " " + u.account.name).casefold()
        ]
        return found[:limit]


def user(provider: str, uid: str, name: str, display: str, **attributes: str) -> FoundUser:
    return FoundUser(Account(provider, uid, name, attributes), display)


def directories(**made: Directory) -> dict[str, Connector]:
    return cast(dict[str, Connector], made)


def lab(**replaced: Directory) -> dict[str, Connector]:
    """AD, Entra and Okta with Alice in each (and a look-alike); `replaced` swaps a directory."""
    upn = "alice.martin@lab.example.test"
    made = dict(
        ad=Directory("ad", [
            user("ad", "g1", upn, "Alice Martin", objectSid=SID_ALICE, userPrincipalName=upn),
            user("ad", "g2", "marty@lab.example.test", "Marty Mart",
                 objectSid=SID_OTHER, userPrincipalName="marty@lab.example.test"),
        ]),
        entra=Directory("entra", [
            user("entra", "e1", upn, "Alice Martin",
                 userPrincipalName=upn, onPremisesSecurityIdentifier=SID_ALICE),
            # same display name, another UPN, no SID: a look-alike, never merged on the name
            user("entra", "e2", "amartin@other.test", "Alice Martin", userPrincipalName="amartin@other.test"),
        ]),
        okta=Directory("okta", [user("okta", "o1", upn, "Alice Martin", login=upn, email=upn)]),
    )  # fmt: skip
    return directories(**(made | replaced))


async def test_accounts_merge_through_strong_anchors_only() -> None:
    found = await search_people(lab(), "alice", ADMIN)
    by_reference = {p.reference: p for p in found.people}
    alice = by_reference["alice.martin@lab.example.test"]
    assert sorted((f.account.where, f.account.id) for f in alice.accounts) == [
        ("ad", "g1"), ("entra", "e1"), ("okta", "o1")
    ]  # fmt: skip
    assert [f.account.id for f in by_reference["amartin@other.test"].accounts] == ["e2"]
    assert found.total == 2 and found.complete


async def test_a_sid_that_disagrees_keeps_accounts_apart() -> None:
    """Same UPN, different SIDs: not one person, whatever the sign-in name says."""
    upn = "carol@lab.example.test"
    made = directories(
        ad=Directory("ad", [user("ad", "g9", upn, "Carol", objectSid=SID_ALICE, userPrincipalName=upn)]),
        entra=Directory("entra", [
            user("entra", "e9", upn, "Carol", userPrincipalName=upn, onPremisesSecurityIdentifier=SID_OTHER)
        ]),
    )  # fmt: skip
    found = await search_people(made, "carol", ADMIN)
    assert sorted(len(p.accounts) for p in found.people) == [1, 1]


async def test_two_accounts_of_one_directory_are_never_one_person() -> None:
    login = "dave@lab.example.test"
    made = directories(
        okta=Directory("okta", [user("okta", "o1", login, "Dave", login=login),
                                user("okta", "o2", login, "Dave", login=login)]),
    )  # fmt: skip
    found = await search_people(made, "dave", ADMIN)
    assert len(found.people) == 2


async def test_exact_then_prefix_then_contains() -> None:
    made = directories(
        ad=Directory("ad", [
            user("ad", "1", "xmart@lab.example.test", "Xavier Xmart",
                 userPrincipalName="xmart@lab.example.test"),
            user("ad", "2", "mart@lab.example.test", "Mart Tamm", userPrincipalName="mart@lab.example.test"),
            user("ad", "3", "alice.martin@lab.example.test", "Alice Martin",
                 userPrincipalName="alice.martin@lab.example.test"),
        ]),
    )  # fmt: skip
    found = await search_people(made, "mart", ADMIN)
    assert [(p.title, p.rank) for p in found.people] == [
        ("Mart Tamm", Rank.EXACT), ("Alice Martin", Rank.PREFIX), ("Xavier Xmart", Rank.CONTAINS)
    ]  # fmt: skip


async def test_pages() -> None:
    many = [user("ad", str(n), f"user{n:02}@x.test", f"User {n:02}", userPrincipalName=f"user{n:02}@x.test")
            for n in range(25)]  # fmt: skip
    made = directories(ad=Directory("ad", many))
    first = await search_people(made, "user", ADMIN, page_size=10)
    third = await search_people(made, "user", ADMIN, page=3, page_size=10)
    assert [p.title for p in first.people][:2] == ["User 00", "User 01"] and first.more
    assert [p.title for p in third.people] == [f"User {n}" for n in range(20, 25)] and not third.more
    with pytest.raises(InvalidInput, match="page"):
        await search_people(made, "user", ADMIN, page=0)


async def test_a_slow_directory_is_still_answering_and_its_answer_comes_with_the_next_ask() -> None:
    slow = Directory("okta", [user("okta", "o7", "alice.martin@lab.example.test", "Alice Martin",
                                   login="alice.martin@lab.example.test")], delay=0.6)  # fmt: skip
    made = lab(okta=slow)
    started = time.monotonic()
    found = await search_people(made, "alice", ADMIN, wait=0.1)
    assert time.monotonic() - started < 0.5  # the page is not held up by the slow directory
    assert found.still_answering == ["okta"] and not found.complete
    alice = next(p for p in found.people if p.reference == "alice.martin@lab.example.test")
    assert {f.account.where for f in alice.accounts} == {"ad", "entra"}
    await asyncio.sleep(0.7)
    again = await search_people(made, "alice", ADMIN, wait=0.1)
    assert again.still_answering == [] and slow.asked == 1  # the search that was under way answered
    alice = next(p for p in again.people if p.reference == "alice.martin@lab.example.test")
    assert {f.account.where for f in alice.accounts} == {"ad", "entra", "okta"}


async def test_a_failing_directory_is_named_and_the_others_answer() -> None:
    made = lab(okta=Directory("okta", [], fail=True))
    found = await search_people(made, "alice", ADMIN)
    assert found.failed == {"okta": "the directory timed out"}
    assert found.people


async def test_scoped_caller_asks_only_her_directories() -> None:
    made = lab()
    scoped = Principal.from_roles("emea", frozenset({GLOBAL_ADMINISTRATOR}), {}, scope=frozenset({"okta"}))
    found = await search_people(made, "alice", scoped)
    assert found.searched == ["okta"]
    assert {f.account.where for p in found.people for f in p.accounts} == {"okta"}
    assert cast(Directory, made["ad"]).asked == 0


async def test_bad_input_and_missing_permission_are_refused() -> None:
    for bad in ("a", "*", "al(ice", "x" * 65, "ali\x00ce"):
        with pytest.raises(InvalidInput, match="query"):
            await search_people(lab(), bad, ADMIN)
    nobody = Principal("nobody", frozenset(), frozenset())
    with pytest.raises(Forbidden):
        await search_people(lab(), "alice", nobody)
    reader = Principal.from_roles("reader", frozenset({SECURITY_READER}), {})
    assert (await search_people(lab(), "alice", reader)).people
