"""Find people from a fragment ("mart", half an address) in every directory the caller may see.

Each directory is asked at once (`UserSearcher.search_users`: AD ambiguous name resolution, Graph
`$search`, Okta's `search`), each given `wait` seconds: one slower than that is named as "still
answering" and the page shows what the others found. Its search goes on in the background, so
asking again a moment later (the console's type-ahead does) picks up its answer. The accounts found
are merged into people only through strong anchors (people.link: SID, UPN, login; never a display
name or email), never two accounts of one directory into one person, never two whose SIDs
disagree; then ranked (exact, then prefix, then contains, then by name) and paged.
"""

from __future__ import annotations

import asyncio
import enum
import re
import time
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from clampdown.auth.principal import Principal, require_permission
from clampdown.connectors.base import Connector, FoundUser, UserSearcher
from clampdown.connectors.instances import stamped
from clampdown.errors import ClampdownError, InvalidInput
from clampdown.limits import MAX_SEARCH_PAGE, MAX_SEARCH_PAGES, SEARCH_WAIT_SECONDS, clean_search_text
from clampdown.model import Account
from clampdown.permissions import RESPONSE_READ
from clampdown.services.people import SID, SIGN_IN_NAME, anchors, contradiction, sid_identities

MAX_FETCH = 200  # accounts asked of one directory: the deepest page, and one more to know of more
ANSWER_KEPT_SECONDS = 20.0  # a directory's answer, kept for the type-ahead asking again
_KEPT_SEARCHES = 512
# What a person types to find an account: names, logins, addresses (and their parts before @).
_NAMES = ("userPrincipalName", "login", "sAMAccountName", "onPremisesSamAccountName", "email", "mail")
_WORD_BREAK = re.compile(r"[\s.@_'+-]+")


class Rank(enum.IntEnum):
    """How well a person matched the fragment: lower is better."""

    EXACT = 0  # a name, login or address is the fragment (or its part before @ is)
    PREFIX = 1  # one of them, or a word of the display name, starts with it
    CONTAINS = 2  # it is somewhere inside one of them

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class PersonMatch:
    """One person the search found: their accounts, linked by strong anchors."""

    title: str  # the display name most of their accounts carry
    reference: str  # what opens their user page: a sign-in name, else an account id
    rank: Rank
    accounts: list[FoundUser]


@dataclass(frozen=True)
class PeopleSearch:
    """One page of people matching a fragment, and what each directory did."""

    query: str
    people: list[PersonMatch]
    page: int
    page_size: int
    total: int  # people found in what the directories returned
    more: bool  # a next page exists (or a directory had more matches than it was asked for)
    searched: list[str]  # every directory asked
    still_answering: list[str] = field(default_factory=list)  # not answered within the wait
    failed: dict[str, str] = field(default_factory=dict)  # directory -> why it could not answer
    not_searchable: list[str] = field(default_factory=list)  # its connector cannot search

    @property
    def complete(self) -> bool:
        return not self.still_answering and not self.failed


@dataclass
class _Asked:
    task: asyncio.Task[list[FoundUser]]
    at: float
    loop: asyncio.AbstractEventLoop


# connector -> (fragment, how many) -> its search under way or just answered. Held weakly: a
# connector closed and dropped takes its searches with it (an id() could be reused).
_asked: weakref.WeakKeyDictionary[object, dict[tuple[str, int], _Asked]] = weakref.WeakKeyDictionary()


def forget_answers() -> None:
    """Drop every kept answer: the next search asks every directory (benchmarks time that)."""
    _asked.clear()


def _drop_stale(searches: dict[tuple[str, int], _Asked], now: float) -> None:
    for key, asked in list(searches.items()):
        if asked.task.done() and now - asked.at > ANSWER_KEPT_SECONDS:
            del searches[key]
    while len(searches) > _KEPT_SEARCHES:
        del searches[next(iter(searches))]


def _ask(connector: UserSearcher, text: str, limit: int) -> asyncio.Task[list[FoundUser]]:
    """The directory's search for `text`: one under way, or answered moments ago, else a new one."""
    now = time.monotonic()
    loop = asyncio.get_running_loop()
    searches = _asked.setdefault(connector, {})
    _drop_stale(searches, now)
    key = (text.casefold(), limit)
    asked = searches.get(key)
    if (
        asked is None
        or asked.loop is not loop
        or (asked.task.done() and (asked.task.cancelled() or asked.task.exception() is not None))
    ):
        task = asyncio.create_task(connector.search_users(text, limit))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning
        asked = searches[key] = _Asked(task, now, loop)
    return asked.task


async def search_people(
    connectors: Mapping[str, Connector],
    query: str,
    caller: Principal,
    *,
    page: int = 1,
    page_size: int = 10,
    wait: float = SEARCH_WAIT_SECONDS,
) -> PeopleSearch:
    """People whose name, login or email holds `query`, from every directory `caller` may see
    (a scoped caller's other directories are neither asked nor named); one page of them."""
    require_permission(caller, RESPONSE_READ, "search for people")
    text = clean_search_text(query)
    if not 1 <= page_size <= MAX_SEARCH_PAGE:
        raise InvalidInput(f"page size: {page_size} is not from 1 to {MAX_SEARCH_PAGE}")
    if not 1 <= page <= MAX_SEARCH_PAGES:
        raise InvalidInput(f"page: {page} is not from 1 to {MAX_SEARCH_PAGES}; type more of the name")
    fetch = min(page * page_size + 1, MAX_FETCH)
    seen = {name: c for name, c in connectors.items() if caller.sees(name)}
    searchers = {name: c for name, c in seen.items() if isinstance(c, UserSearcher)}
    tasks = {name: _ask(c, text, fetch) for name, c in searchers.items()}
    if tasks:
        await asyncio.wait(tasks.values(), timeout=wait)
    found: list[FoundUser] = []
    failed: dict[str, str] = {}
    still: list[str] = []
    truncated = False
    for name, task in tasks.items():
        if not task.done():
            still.append(name)
        elif task.cancelled():
            failed[name] = "the search was cancelled"
        elif isinstance(error := task.exception(), ClampdownError):
            failed[name] = error.message
        elif error is not None:
            failed[name] = f"{type(error).__name__}: {error}"
        else:
            answer = task.result()
            truncated |= len(answer) >= fetch
            found += [FoundUser(stamped(f.account, name), f.display_name, f.email) for f in answer]
    people = sorted(merge(found, text), key=lambda p: (p.rank, p.title.casefold(), p.reference))
    start = (page - 1) * page_size
    return PeopleSearch(
        query=text,
        people=people[start : start + page_size],
        page=page,
        page_size=page_size,
        total=len(people),
        more=len(people) > start + page_size or truncated,
        searched=list(searchers),
        still_answering=still,
        failed=failed,
        not_searchable=[name for name in seen if name not in searchers],
    )


def merge(found: list[FoundUser], text: str) -> list[PersonMatch]:
    """The accounts grouped into people through strong anchors only: two accounts sharing a SID,
    UPN or login are one person unless that puts two accounts of one directory, or SIDs of
    different identities, into one person."""
    unique = list({(f.account.where, f.account.id): f for f in found}.values())
    group = list(range(len(unique)))  # account -> the first account of its person
    members: dict[int, list[int]] = {i: [i] for i in range(len(unique))}

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    sharing: dict[tuple[str, str], list[int]] = {}
    for i, item in enumerate(unique):
        for anchor in anchors(item.account):
            sharing.setdefault((anchor.kind, anchor.key), []).append(i)
    # SIDs first (a migrated account's sIDHistory makes two SIDs one identity), and again until
    # nothing joins: a join refused now (two SIDs not yet known as one) may be allowed after another.
    ordered = sorted(sharing.items(), key=lambda item: item[0][0] != SID)
    joined = True
    while joined:
        joined = False
        for _, holders in ordered:
            for i in holders[1:]:
                a, b = root(holders[0]), root(i)
                if a != b and _may_join([unique[n].account for n in members[a] + members[b]]):
                    group[b] = a
                    members[a] += members.pop(b)
                    joined = True
    return [_person([unique[n] for n in sorted(ids)], text) for ids in members.values()]


def _may_join(accounts: list[Account]) -> bool:
    """Whether these accounts may be one person: one account per directory, no SIDs that disagree."""
    if len({a.where for a in accounts}) < len(accounts):
        return False
    identities = sid_identities(accounts)
    return not any(contradiction(a, b, identities) for n, a in enumerate(accounts) for b in accounts[n + 1 :])


def _person(accounts: list[FoundUser], text: str) -> PersonMatch:
    titles = Counter(f.display_name for f in accounts if f.display_name)
    title = titles.most_common(1)[0][0] if titles else accounts[0].account.name
    names = Counter(
        a.value for f in accounts for a in anchors(f.account) if a.kind == SIGN_IN_NAME
    ).most_common(1)
    reference = names[0][0] if names else accounts[0].account.id
    return PersonMatch(title, reference, min(rank(f, text) for f in accounts), accounts)


def rank(found: FoundUser, text: str) -> Rank:
    """How well one account matches the fragment."""
    wanted = text.casefold()
    values = [found.display_name, found.email or "", found.account.name]
    values += [found.account.attributes.get(name, "") for name in _NAMES]
    values = [v.casefold() for v in values if v]
    if any(v == wanted or ("@" in v and "@" not in wanted and v.split("@")[0] == wanted) for v in values):
        return Rank.EXACT
    if any(v.startswith(wanted) or any(w.startswith(wanted) for w in _WORD_BREAK.split(v)) for v in values):
        return Rank.PREFIX
    return Rank.CONTAINS
