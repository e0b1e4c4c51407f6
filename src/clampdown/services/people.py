"""One person across providers: their account in AD, Entra ID and Okta, with state and the
actions the caller may take on each.

Accounts are linked into one person only through strong anchors, values a user cannot set for
themselves: AD objectSid = Entra onPremisesSecurityIdentifier (compared exactly), and the sign-in
names AD userPrincipalName, Entra userPrincipalName and Okta login (compared ignoring case, as the
directories do). Email never links: a user, or an attacker, can often set it. When the accounts a
reference finds do not link, or their anchors disagree, `find_person` refuses (IdentityConflict)
and says what it found, instead of guessing whose account to disable.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from clampdown.auth.principal import Principal
from clampdown.catalog import ActionDefinition, all_actions
from clampdown.connectors.base import Connector
from clampdown.connectors.instances import directory_title, stamped
from clampdown.errors import AccountNotFound, ClampdownError, IdentityConflict, InvalidInput, NotFound
from clampdown.limits import MAX_TARGET
from clampdown.model import MULTI_VALUE_SEPARATOR, Account, AccountState

SID = "sid"
SIGN_IN_NAME = "sign-in name"
# The strong anchors each provider's accounts carry: attribute -> kind. Anchors of one kind link.
# sIDHistory links a migrated AD account to the one it was migrated from, in another forest or
# domain: only a domain administrator's migration tool can write it.
ANCHORS: dict[str, dict[str, str]] = {
    "ad": {"objectSid": SID, "sIDHistory": SID, "userPrincipalName": SIGN_IN_NAME},
    "entra": {"onPremisesSecurityIdentifier": SID, "userPrincipalName": SIGN_IN_NAME},
    "okta": {"login": SIGN_IN_NAME},
}
MULTI_VALUED = frozenset({"sIDHistory"})
# Attributes that may have matched the reference, in the order worth naming.
_MATCHED_BY = ("userPrincipalName", "login", "objectSid", "onPremisesSecurityIdentifier", "objectGUID",
               "sAMAccountName", "onPremisesSamAccountName", "email", "mail", "dn")  # fmt: skip


@dataclass(frozen=True)
class LinkedAccount:
    account: Account  # its `linked_by` says how it was linked into the person
    state: AccountState | None
    state_error: str | None
    actions: list[ActionDefinition]  # what the caller may run on it

    @property
    def linked_by(self) -> str:
        """How the account was linked into the person, in words."""
        return self.account.linked_by or ""


@dataclass(frozen=True)
class Person:
    reference: str
    accounts: list[LinkedAccount] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # provider -> why it was not asked
    # Accounts met while following an anchor that did not carry it (found by email, say): not linked.
    not_linked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Anchor:
    """One strong anchor of one account."""

    provider: str
    attribute: str
    kind: str
    value: str
    instance: str | None = None  # the directory, where it is not the one named after its kind

    @property
    def key(self) -> str:
        """The value as the directory compares it: sign-in names ignore case, SIDs do not."""
        return self.value.casefold() if self.kind == SIGN_IN_NAME else self.value

    @property
    def label(self) -> str:
        return f"{directory_title(self.provider, self.instance)} {self.attribute}"


def anchors(account: Account) -> list[Anchor]:
    """The account's strong anchors, SIDs first. A multi-valued one (an AD account's sIDHistory:
    the SIDs of the accounts it was migrated from) is one anchor per value."""
    kinds = ANCHORS.get(account.provider, {})
    found = [
        Anchor(account.provider, attribute, kind, value, account.instance)
        for attribute, kind in kinds.items()
        for value in split_values(attribute, account.attributes.get(attribute))
    ]
    return sorted(found, key=lambda a: a.kind != SID)


def split_values(attribute: str, raw: str | None) -> list[str]:
    """The values of an attribute as an account carries it: several for a multi-valued one."""
    if not raw:
        return []
    return [v for v in raw.split(MULTI_VALUE_SEPARATOR) if v] if attribute in MULTI_VALUED else [raw]


def link(account: Account, other: Account) -> str | None:
    """How `account` and `other` are the same person, in words; None if no anchor matches."""
    for mine in anchors(account):
        for theirs in anchors(other):
            if mine.kind == theirs.kind and mine.key == theirs.key:
                return f"{mine.label} = {theirs.label} {theirs.value}"
    return None


def sid_identities(accounts: list[Account]) -> dict[str, str]:
    """Each SID the accounts carry -> one SID standing for every SID of the same identity: an
    account that carries several (its objectSid and the sIDHistory of a migration) makes them one.
    Only a domain administrator's migration can write sIDHistory."""
    root: dict[str, str] = {}

    def find(sid: str) -> str:
        while root.setdefault(sid, sid) != sid:
            sid = root[sid]
        return sid

    for account in accounts:
        sids = [find(a.key) for a in anchors(account) if a.kind == SID]
        for sid in sids[1:]:
            root[sid] = sids[0]
    return {sid: find(sid) for sid in list(root)}


def contradiction(account: Account, other: Account, identities: dict[str, str] | None = None) -> str | None:
    """Why `account` and `other` cannot be one person: both carry SIDs, and none is of the same
    identity (`sid_identities`: a migrated account's sIDHistory joins its old SID); None if none."""
    same = identities or {}
    mine = [a for a in anchors(account) if a.kind == SID]
    theirs = [a for a in anchors(other) if a.kind == SID]
    shared = {same.get(a.key, a.key) for a in mine} & {same.get(a.key, a.key) for a in theirs}
    if not mine or not theirs or shared:
        return None
    return f"{mine[0].label} {mine[0].value} ≠ {theirs[0].label} {theirs[0].value}"


def matched_by(account: Account, reference: str) -> str:
    """Which identifier of the account the reference matched, in words."""
    ref = reference.strip()
    folded = ref.strip("{}").casefold()
    attributes = account.attributes
    for attribute in _MATCHED_BY:
        value = attributes.get(attribute)
        if value and (value == ref if "Sid" in attribute or "Identifier" in attribute else
                      value.casefold() == folded):  # fmt: skip
            return f"matched the reference by {attribute}"
    if folded == account.id.casefold():
        return "matched the reference by its id"
    if ref.count("\\") == 1:
        name = ref.split("\\")[1].casefold()
        for attribute in ("sAMAccountName", "onPremisesSamAccountName"):
            if attributes.get(attribute, "").casefold() == name:
                return f"matched the reference by {attribute}"
    for attribute in ("login", "userPrincipalName"):
        if attributes.get(attribute, "").casefold().split("@")[0] == folded:
            return f"matched the reference by the name part of its {attribute}"
    return "matched the reference (by the provider's own lookup)"


def _shown(account: Account, how: str) -> str:
    ids = ", ".join(f"{a.attribute} {a.value}" for a in anchors(account)) or "no strong anchor"
    email = account.attributes.get("email")
    extra = f", email {email}" if email else ""
    return f"{directory_title(account.provider, account.instance)} {account.name} ({how}; {ids}{extra})"


async def _try_resolve(
    instance: str, connector: Connector, reference: str
) -> Account | ClampdownError | None:
    try:
        return stamped(await connector.resolve_user(reference), instance)
    except AccountNotFound:
        return None
    except ClampdownError as exc:
        return exc


@dataclass
class _Search:
    """What one find_person call has found so far."""

    reference: str
    found: dict[str, Account] = field(default_factory=dict)  # directory (instance) -> account
    how: dict[str, str] = field(default_factory=dict)  # directory -> how it was found
    by_reference: set[str] = field(default_factory=set)  # directories whose account the reference matched
    unreachable: dict[str, str] = field(default_factory=dict)
    not_linked: list[str] = field(default_factory=list)

    def found_text(self) -> str:
        return "; ".join(_shown(a, self.how[p]) for p, a in self.found.items())


async def _follow(search: _Search, connectors: dict[str, Connector], instance: str) -> None:
    """Look for the account in directory `instance` by the anchors of the accounts found, keeping
    only one that carries the anchor it was looked up by."""
    provider = connectors[instance].provider
    kinds = set(ANCHORS.get(provider, {}).values())
    sources: dict[str, Anchor] = {}  # lookup key -> the anchor that asks for it
    for account in search.found.values():
        for anchor in anchors(account):
            asked = Anchor(provider, "", anchor.kind, search.reference).key  # the reference was asked
            if anchor.kind in kinds and anchor.key != asked:
                sources.setdefault(anchor.key, anchor)
    keys = list(sources)
    results = await asyncio.gather(
        *(_try_resolve(instance, connectors[instance], sources[k].value) for k in keys)
    )
    candidates: dict[str, tuple[Account, str]] = {}
    failures: list[str] = []
    for key, result in zip(keys, results, strict=True):
        source = sources[key]
        if isinstance(result, ClampdownError):
            failures.append(f"looking up {source.label} {source.value}: {result.message}")
        elif isinstance(result, Account):
            mine = [a for a in anchors(result) if a.kind == source.kind and a.key == source.key]
            if mine:
                candidates.setdefault(result.id, (result, f"{mine[0].label} = {source.label} {source.value}"))
            else:
                search.not_linked.append(
                    f"{_shown(result, f'found looking up {source.label} {source.value}')}: it does not "
                    f"carry that value as a strong anchor, so it is not linked (email never links)"
                )
    if len(candidates) > 1:
        shown = "; ".join(_shown(a, how) for a, how in candidates.values())
        raise IdentityConflict(
            f"'{search.reference}' does not name one person: the anchors of {search.found_text()} "
            f"lead to {len(candidates)} different {directory_title(provider, instance)} accounts: {shown}. "
            f"Nothing was done; give a reference that names one account, or fix the directories."
        )
    if candidates:  # verified by its anchor; the consistency check still compares it with all
        account, how = next(iter(candidates.values()))
        search.found[instance] = account
        search.how[instance] = how
    elif failures:
        search.unreachable[instance] = "; ".join(failures)


def _check_consistent(search: _Search) -> None:
    """Refuse unless every account is linked to every other through anchor matches, and no two
    carry SIDs that differ."""
    accounts = list(search.found.values())
    identities = sid_identities(accounts)
    for n, account in enumerate(accounts):
        for other in accounts[n + 1 :]:
            if why := contradiction(account, other, identities):
                raise IdentityConflict(
                    f"'{search.reference}' does not name one person: found {search.found_text()}; "
                    f"their anchors disagree: {why}. Nothing was done; give the account's id in "
                    f"each provider instead, or fix the directories."
                )
    reached, parent = _spanning(accounts)
    apart = [a for a in accounts if a.where not in reached]
    if apart:
        linked = [a for a in accounts if a.where in reached]
        why = "; ".join(
            f"{_shown(a, search.how[a.where])} shares no objectSid, userPrincipalName or login "
            f"with {', '.join(f'{directory_title(b.provider, b.instance)} {b.name}' for b in linked)}"
            for a in apart
        )
        raise IdentityConflict(
            f"'{search.reference}' does not name one person: found {search.found_text()}. They do "
            f"not link: {why} (email never links). Nothing was done; give the account's id in each "
            f"provider instead, or fix the directories."
        )
    for account in accounts[1:]:
        edge = link(account, parent[account.where])
        if account.where in search.by_reference and edge:
            search.how[account.where] += f"; {edge}"


def _spanning(accounts: list[Account]) -> tuple[set[str], dict[str, Account]]:
    """The directories (one account each) reachable from the first account over anchor matches,
    and each one's parent on the way."""
    if not accounts:
        return set(), {}
    reached, parent, queue = {accounts[0].where}, {}, [accounts[0]]
    while queue:
        current = queue.pop(0)
        for other in accounts:
            if other.where not in reached and link(other, current):
                reached.add(other.where)
                parent[other.where] = current
                queue.append(other)
    return reached, parent


async def find_person(connectors: dict[str, Connector], reference: str, caller: Principal) -> Person:
    """Resolve `reference` in every provider, follow the strong anchors found into the providers
    that found nothing, and refuse (IdentityConflict) unless all the accounts link. Only the
    directories the caller may see are asked: for a scoped caller the others do not exist."""
    ref = reference.strip()
    if not ref or len(ref) > MAX_TARGET or "\x00" in ref:
        raise InvalidInput(f"user reference must be 1 to {MAX_TARGET} characters, without NUL")
    connectors = {name: c for name, c in connectors.items() if caller.sees(name)}
    names = list(connectors)
    first = await asyncio.gather(*(_try_resolve(n, connectors[n], ref) for n in names))
    search = _Search(ref)
    for name, result in zip(names, first, strict=True):
        if isinstance(result, Account):
            search.found[name] = result
            search.how[name] = matched_by(result, ref)
            search.by_reference.add(name)
        elif isinstance(result, ClampdownError):
            search.unreachable[name] = result.message
    if search.found:
        for name in [n for n in names if n not in search.found and n not in search.unreachable]:
            await _follow(search, connectors, name)
    if not search.found:
        if search.unreachable:
            raise NotFound(
                f"no user '{ref}' in the providers that answered; unreachable: {search.unreachable}"
            )
        raise NotFound(f"no user '{ref}' in {', '.join(names) or 'any provider (none configured)'}")
    _check_consistent(search)
    accounts = []
    for name, found in search.found.items():
        account = replace(found, linked_by=search.how[name])
        try:
            state, error = await connectors[name].read_state(account), None
        except ClampdownError as exc:
            state, error = None, exc.message
        allowed = [d for d in all_actions() if d.provider == account.provider and caller.may_run(d)]
        accounts.append(LinkedAccount(account, state, error, allowed))
    return Person(ref, accounts, search.unreachable, search.not_linked)
