"""A SET's subject resolved to one person through the same strong links as everything else
(services/people.py), or left unresolved with the reason: never a guess.

An `email` subject resolves when a directory holds that value as the account's sign-in name
(userPrincipalName, Okta login) or as its email, and the accounts found link into one person; an
`iss_sub` subject whose issuer is the transmitter's own (or one listed in `subject_issuers`)
resolves when its `sub` is an account's sign-in name or id. A complex subject resolves through
its `user` member, an `aliases` subject when the identifiers that resolve agree. Opaque and phone
subjects, and anything else, stay unresolved: no directory anchors them.
"""

from __future__ import annotations

from dataclasses import dataclass

from clampdown.auth.principal import Principal
from clampdown.config import SsfReceiverSettings
from clampdown.connectors.base import Connector
from clampdown.errors import ClampdownError, IdentityConflict, NotFound
from clampdown.services.people import SIGN_IN_NAME, LinkedAccount, anchors, find_person
from clampdown.signals.subjects import ALIASES, Subject, SubjectId

# Who resolves subjects: sees every directory (a signal names a person wherever they are).
RESOLVER = Principal("ssf", frozenset(), frozenset(), channel="ssf")
# What the reference must have matched in at least one directory, per subject format.
_STRONG = {
    "email": ("userPrincipalName", "login", "email", "mail"),
    "iss_sub": ("userPrincipalName", "login", "its id"),
}


@dataclass(frozen=True)
class Resolution:
    """Whom the subject names: one person's accounts, or why it names nobody here."""

    resolved: bool
    note: str
    upn: str | None = None
    account_ids: tuple[str, ...] = ()  # directory:id of each account


def _unresolved(note: str) -> Resolution:
    return Resolution(False, note)


# The complex subject members Clampdown interprets: the user, which names the person. A session, a
# device or an application narrows what the event is about to something Clampdown cannot act on.
INTERPRETED_MEMBERS = frozenset({"user"})


def uninterpreted_critical(subject: Subject, critical: frozenset[str]) -> Resolution | None:
    """Unresolved when the subject has members the transmitter marks critical (its metadata's
    critical_subject_members) and Clampdown does not interpret: acting on the whole person for an
    event about one of their sessions or devices would be a guess. None when nothing stands in the way."""
    present = sorted((set(subject.members) & critical) - INTERPRETED_MEMBERS)
    if not present:
        return None
    return _unresolved(
        f"the transmitter marks the member(s) {', '.join(present)} critical and Clampdown does not "
        "interpret them: the event names no one it may act on"
    )


def _strongly_matched(account: LinkedAccount, strong: tuple[str, ...]) -> bool:
    how = account.linked_by.split(";", 1)[0].strip()
    return any(how == f"matched the reference by {attribute}" for attribute in strong)


def _upn(accounts: list[LinkedAccount]) -> str | None:
    for account in sorted(accounts, key=lambda a: a.account.provider == "okta"):  # a UPN before a login
        for anchor in anchors(account.account):
            if anchor.kind == SIGN_IN_NAME:
                return anchor.value
    return None


async def _resolve_one(
    connectors: dict[str, Connector], ident: SubjectId, settings: SsfReceiverSettings
) -> Resolution:
    if ident.format == "email":
        reference = ident.get("email") or ""
    elif ident.format == "iss_sub":
        issuers = {settings.issuer, *settings.subject_issuers}
        if ident.get("iss") not in issuers:
            return _unresolved(
                f"iss_sub of issuer {ident.get('iss')!r}, which names no account here (the receiver's "
                f"subject_issuers: {sorted(issuers)})"
            )
        reference = ident.get("sub") or ""
    else:
        return _unresolved(f"format {ident.format}: no strong anchor of any directory account")
    try:
        person = await find_person(connectors, reference, RESOLVER)
    except IdentityConflict as exc:
        return _unresolved(f"ambiguous: {exc.message}")
    except NotFound:
        return _unresolved(f"no directory account is {reference!r}")
    except ClampdownError as exc:
        return _unresolved(f"not resolved: {exc.message}")
    strong = _STRONG[ident.format]
    if not any(_strongly_matched(a, strong) for a in person.accounts):
        found = "; ".join(f"{a.account.where} {a.account.name} ({a.linked_by})" for a in person.accounts)
        return _unresolved(f"{reference!r} matched no {', '.join(strong)} of an account: {found}")
    ids = tuple(f"{a.account.where}:{a.account.id}" for a in person.accounts)
    how = "; ".join(f"{a.account.where} {a.account.name}: {a.linked_by}" for a in person.accounts)
    return Resolution(True, how, _upn(person.accounts), ids)


async def resolve_subject(
    connectors: dict[str, Connector], subject: Subject, settings: SsfReceiverSettings
) -> Resolution:
    """The person the subject names (through its user identifier), or why it names none."""
    ident = subject.user
    if ident is None:
        return _unresolved(f"the {subject.format} subject names no user")
    if ident.format != ALIASES:
        return await _resolve_one(connectors, ident, settings)
    found = [await _resolve_one(connectors, alias, settings) for alias in ident.aliases]
    people = {r.account_ids for r in found if r.resolved}
    if len(people) > 1:
        return _unresolved(
            "ambiguous: the aliases name different people: " + " | ".join(r.note for r in found)
        )
    if not people:
        return _unresolved("no alias resolves: " + " | ".join(r.note for r in found))
    return next(r for r in found if r.resolved)
