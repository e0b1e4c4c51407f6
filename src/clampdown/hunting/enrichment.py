"""Event rows joined to IdentityInfo, so every row names its account's UPN, SID, Entra object id and
Okta id wherever a configured directory knows the account.

The join uses strong anchors only, the ones `services/people.py` links a person by: a SID (AD
objectSid = Entra onPremisesSecurityIdentifier), a sign-in name (AD userPrincipalName = Entra
userPrincipalName = Okta login, ignoring case), a provider's own id, and an AD sAMAccountName
*within its domain* only (CORP\\alice and EMEA\\alice are different people). First the account the
event itself names is found among IdentityInfo's accounts of its provider (the seed): by SID,
then its id, then the sAMAccountName in its domain's directory, then the UPN. Then the seed's
accounts in the other providers: by its SID first, else by its UPN. Each step must find exactly
one account whose SID (where both are known) is the person's; several, or another SID, leave the
columns empty: never a guess. (Only SIDs contradict: a UPN may have been renamed since the event.)

The event's own columns are never overwritten. AccountUpn, AccountSid, TargetAccountUpn and
TargetAccountSid are filled only where the event left them empty, and IdentityFilled names those
filled; the id columns (AccountEntraObjectId, AccountOktaId, their Target twins, a sign-in's
AccountSid) hold the join's answer alone. A refresh of IdentityInfo joins stored rows again
(`reenrich`): rows whose account became known, or whose identity changed, are updated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from clampdown.hunting.schema import (
    CLOUD_SIGN_IN_EVENTS,
    IDENTITY_DIRECTORY_EVENTS,
    IDENTITY_FILLED,
    IDENTITY_INFO,
    IDENTITY_LOGON_EVENTS,
)
from clampdown.hunting.store import EventStore, Row

# (the event's directory, the account's domain) -> the account's AD directory (DirectoryMatcher).
AccountDirectory = Callable[[str | None, str | None], str | None]
AD, ENTRA, OKTA = "ad", "entra", "okta"
# The columns the join fills only where the event left them empty.
FILLABLE = ("AccountUpn", "AccountSid", "TargetAccountUpn", "TargetAccountSid")


def no_domains(event_directory: str | None, domain: str | None) -> str | None:
    """The account directory when no AD domain is configured: known only when the event names no
    domain (the DC's own account)."""
    return event_directory if not domain or domain.strip() in ("", "-") else None


@dataclass(frozen=True, slots=True)
class Identity:
    """One IdentityInfo account and its anchors."""

    provider: str
    directory: str | None
    object_id: str
    upn: str | None
    name: str | None  # AD: sAMAccountName
    sid: str | None  # AD: objectSid; Entra: onPremisesSecurityIdentifier


@dataclass(frozen=True, slots=True)
class Subject:
    """An account as one event names it, by the event's own columns only."""

    provider: str  # ad, entra, okta
    directory: str | None  # the directory the account is in; None when that cannot be told
    sid: str | None = None
    upn: str | None = None
    object_id: str | None = None
    name: str | None = None  # AD: sAMAccountName


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What the join says of one account: its anchors in every provider that knows it."""

    upn: str | None = None
    sid: str | None = None
    entra_object_id: str | None = None
    okta_id: str | None = None


NOTHING = Enrichment()


def _key(text: str | None) -> str | None:
    value = None if text is None else text.strip()
    return value.casefold() if value else None


def _clean(value: Any) -> str | None:
    text = None if value is None else str(value).strip()
    return text or None


def _one(found: Sequence[Identity]) -> Identity | None:
    """The one account `found` holds (several rows of one account count once); None when several."""
    first = found[0]
    same = all((i.provider, i.directory, i.object_id) == (first.provider, first.directory, first.object_id)
               for i in found)  # fmt: skip
    return first if same else None


def _agrees(identity: Identity, sid: str | None) -> bool:
    """The account's SID is not another than the one known of the person. Only SIDs, which never
    change, can contradict: a UPN may have been renamed since the event."""
    return not (sid and identity.sid and identity.sid != sid)


class IdentityIndex:
    """IdentityInfo's accounts by anchor; answers are kept per subject, so a large ingest joins
    each account once."""

    def __init__(self, identities: Iterable[Identity]) -> None:
        self.by_sid: dict[str, list[Identity]] = {}
        self.by_upn: dict[str, list[Identity]] = {}
        self.by_name: dict[tuple[str, str], list[Identity]] = {}
        self.by_id: dict[tuple[str, str | None, str], list[Identity]] = {}
        self.size = 0
        for i in identities:
            self.size += 1
            if i.sid:
                self.by_sid.setdefault(i.sid, []).append(i)
            if upn := _key(i.upn):
                self.by_upn.setdefault(upn, []).append(i)
            if i.provider == AD and i.directory and (name := _key(i.name)):
                self.by_name.setdefault((i.directory, name), []).append(i)
            self.by_id.setdefault((i.provider, i.directory, i.object_id), []).append(i)
        self._answers: dict[Subject, Enrichment] = {}

    def resolve(self, subject: Subject) -> Enrichment:
        """Who the subject is in every provider, by the rules in the module's docstring."""
        found = self._answers.get(subject)
        if found is None:
            found = self._answers[subject] = self._resolve(subject)
        return found

    def knows(self, subject: Subject) -> bool:
        """Whether IdentityInfo holds the account the subject names."""
        return self._seed(subject) is not None

    def _seed(self, s: Subject) -> Identity | None:
        anchors: list[list[Identity]] = []
        if s.sid:
            anchors.append([i for i in self.by_sid.get(s.sid, ()) if i.provider == s.provider])
        if s.object_id and s.provider != AD:
            anchors.append(self.by_id.get((s.provider, s.directory, s.object_id), []))
        if s.name and s.directory and s.provider == AD:
            anchors.append(self.by_name.get((s.directory, _key(s.name) or ""), []))
        if (upn := _key(s.upn)) and (s.directory is not None or s.provider == AD):
            anchors.append([
                i for i in self.by_upn.get(upn, ())
                if i.provider == s.provider and (s.directory is None or i.directory == s.directory)
            ])  # fmt: skip
        for found in anchors:
            if found:  # the strongest anchor that finds anything decides
                seed = _one(found)
                return seed if seed is not None and _agrees(seed, s.sid) else None
        return None

    def _linked(self, provider: str, sid: str | None, upn: str | None) -> Identity | None:
        """The person's one account in `provider`: by SID, else by UPN (whose SID, if any, agrees)."""
        for found in (
            self.by_sid.get(sid, []) if sid else [],
            self.by_upn.get(_key(upn) or "", []) if upn else [],
        ):
            candidates = [i for i in found if i.provider == provider]
            if candidates:
                one = _one(candidates)
                return one if one is not None and _agrees(one, sid) else None
        return None

    def _resolve(self, s: Subject) -> Enrichment:
        own = Enrichment(
            entra_object_id=s.object_id if s.provider == ENTRA else None,
            okta_id=s.object_id if s.provider == OKTA else None,
        )
        if not (s.sid or s.upn or s.object_id or s.name) or (s.name and s.name.endswith("$")):
            return own  # no anchor, or a computer account: not a person
        seed = self._seed(s)
        if seed is None:
            return own
        sid, upn = seed.sid, seed.upn
        ad = seed if seed.provider == AD else self._linked(AD, sid, upn)
        if ad is not None:  # an Okta seed knows no SID, an AD account may lack a UPN
            sid, upn = sid or ad.sid, upn or ad.upn
        entra = seed if seed.provider == ENTRA else self._linked(ENTRA, sid, upn)
        okta = seed if seed.provider == OKTA else self._linked(OKTA, sid, upn)
        return Enrichment(
            upn=upn,
            sid=sid,
            entra_object_id=entra.object_id if entra else own.entra_object_id,
            okta_id=okta.object_id if okta else own.okta_id,
        )


def load_index(store: EventStore) -> IdentityIndex:
    """The index of every IdentityInfo account."""
    with store.connect() as con:
        found = con.execute(
            f'SELECT "Provider", "Directory", "AccountObjectId", "AccountUpn", "AccountName", "OnPremSid"'
            f' FROM "{IDENTITY_INFO.name}" WHERE "AccountObjectId" IS NOT NULL AND "Provider" IS NOT NULL'
        ).fetchall()
    return IdentityIndex(
        Identity(str(p), d, str(o), _clean(u), _clean(n) if p == AD else None, _clean(s))
        for p, d, o, u, n, s in found
    )


# --- Rows -----------------------------------------------------------------------------------------


def _own(row: Row, column: str) -> str | None:
    """The event's own value of a column: none when the join filled it."""
    filled = row.get(IDENTITY_FILLED)
    if filled and column in filled.split(","):
        return None
    return _clean(row.get(column))


def _target_domain(row: Row) -> str | None:
    if "_TargetDomain" in row:
        return _clean(row["_TargetDomain"])
    extra = row.get("AdditionalFields")
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            return None
    return _clean(extra.get("TargetDomainName")) if isinstance(extra, dict) else None


def subjects(table: str, row: Row, where: AccountDirectory) -> list[tuple[str, Subject]]:
    """The accounts a row names, each with the prefix of its columns (Account, TargetAccount)."""
    directory = row.get("Directory")
    if table == CLOUD_SIGN_IN_EVENTS.name:
        provider = str(row.get("Provider") or "")
        upn, object_id = _own(row, "AccountUpn"), _clean(row.get("AccountObjectId"))
        return [("Account", Subject(provider, directory, None, upn, object_id))]
    if table == IDENTITY_LOGON_EVENTS.name:
        return [("Account", _ad_subject(row, "Account", where(directory, row.get("AccountDomain"))))]
    if table != IDENTITY_DIRECTORY_EVENTS.name:
        return []
    application = row.get("Application")
    if application == "Active Directory":
        # 4740 names the caller's computer in TargetDomainName: its account is the DC's domain's.
        target_domain = None if row.get("EventId") == 4740 else _target_domain(row)
        return [
            ("Account", _ad_subject(row, "Account", where(directory, row.get("AccountDomain")))),
            ("TargetAccount", _ad_subject(row, "TargetAccount", where(directory, target_domain))),
        ]
    if application == "Okta":
        return [
            (p, Subject(OKTA, directory, None, _own(row, f"{p}Upn"), _clean(row.get(f"{p}ObjectId"))))
            for p in ("Account", "TargetAccount")
        ]
    return []


def _ad_subject(row: Row, prefix: str, directory: str | None) -> Subject:
    return Subject(
        AD,
        directory,
        _own(row, f"{prefix}Sid"),
        _own(row, f"{prefix}Upn"),
        None,
        _clean(row.get(f"{prefix}Name")),
    )


def identity_columns(table: str) -> tuple[str, ...]:
    """The columns the join writes in a table's rows."""
    names = {c.name for c in _TABLES[table].columns}
    prefixes = ("Account", "TargetAccount") if "TargetAccountOktaId" in names else ("Account",)
    out = [f"{p}{c}" for p in prefixes for c in ("Upn", "Sid", "EntraObjectId", "OktaId")]
    return (*[c for c in out if c in names], IDENTITY_FILLED)


_TABLES = {t.name: t for t in (IDENTITY_LOGON_EVENTS, IDENTITY_DIRECTORY_EVENTS, CLOUD_SIGN_IN_EVENTS)}
# The event's own columns of each table that the join fills where they are empty.
_FILLABLE = {t: frozenset(FILLABLE) & {c.name for c in _TABLES[t].columns} for t in _TABLES}
_FILLABLE[CLOUD_SIGN_IN_EVENTS.name] = frozenset({"AccountUpn"})  # its AccountSid is the join's alone


def joined(table: str, row: Row, index: IdentityIndex, where: AccountDirectory) -> dict[str, Any]:
    """The values of the join's columns for one row (identity_columns), from its own columns."""
    values: dict[str, Any] = {}
    filled: list[str] = []
    fillable = _FILLABLE[table]
    for prefix, subject in subjects(table, row, where):
        found = index.resolve(subject)
        for column, value in ((f"{prefix}Upn", found.upn), (f"{prefix}Sid", found.sid)):
            if column not in fillable:  # a sign-in's AccountSid: the join's answer alone
                values[column] = value
            elif (own := _own(row, column)) is not None:
                values[column] = own
            else:
                values[column] = value
                if value is not None:
                    filled.append(column)
        values[f"{prefix}EntraObjectId"] = found.entra_object_id
        values[f"{prefix}OktaId"] = found.okta_id
    values[IDENTITY_FILLED] = ",".join(filled) or None
    return values


class RowJoiner:
    """`joined` with its answers kept per the values it reads, so a large ingest joins each
    account once: a row of an account met before costs one dictionary look-up."""

    def __init__(self, index: IdentityIndex, where: AccountDirectory = no_domains) -> None:
        self.index, self.where = index, where
        self._answers: dict[tuple[Any, ...], dict[str, Any]] = {}

    def __call__(self, table: str, row: Row) -> dict[str, Any]:
        """The join's columns for `row`, a row of `table`."""
        key = (table, *map(row.get, _KEYS[table]))
        if table == IDENTITY_DIRECTORY_EVENTS.name:
            key = (*key, _target_domain(row))
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = joined(table, row, self.index, self.where)
        return found


def enrich_rows(
    rows: dict[str, list[Row]], index: IdentityIndex, where: AccountDirectory = no_domains
) -> None:
    """Join each row (table -> rows, as a Batch holds them) to IdentityInfo, in place."""
    join = RowJoiner(index, where)
    for table, table_rows in rows.items():
        if table in _TABLES:
            for row in table_rows:
                row.update(join(table, row))


# --- Rows already stored ----------------------------------------------------------------------------

# The columns a table's join reads, as SQL expressions (the directory events' target domain is in
# AdditionalFields).
_READS = {
    IDENTITY_LOGON_EVENTS.name: ("Directory", "AccountName", "AccountDomain"),
    IDENTITY_DIRECTORY_EVENTS.name: (
        "Directory", "Application", "EventId", "AccountName", "AccountDomain", "AccountObjectId",
        "TargetAccountName", "TargetAccountObjectId",
    ),
    CLOUD_SIGN_IN_EVENTS.name: ("Directory", "Provider", "AccountObjectId"),
}  # fmt: skip
_TARGET_DOMAIN = """json_extract_string("AdditionalFields", '$.TargetDomainName')"""
# Every column `joined` reads (the target domain aside).
_KEYS = {t: (*_READS[t], *sorted(_FILLABLE[t]), IDENTITY_FILLED) for t in _TABLES}


# Rows whose account the join may not know yet: a known AD account has a UPN, a known cloud one
# (nearly always) a SID; the others need not be read to find accounts to look up.
_MAYBE_UNKNOWN = {
    IDENTITY_LOGON_EVENTS.name: '"AccountUpn" IS NULL',
    IDENTITY_DIRECTORY_EVENTS.name: '"AccountUpn" IS NULL OR "TargetAccountUpn" IS NULL',
    CLOUD_SIGN_IN_EVENTS.name: '"AccountSid" IS NULL',
}


def _stored(store: EventStore, table: str, where: str | None = None) -> tuple[list[str], list[Row]]:
    """The SQL expressions the join reads in a table, and their distinct values in its rows (those
    `where` selects)."""
    writes = identity_columns(table)
    reads = [f'"{c}"' for c in _READS[table]] + [f'"{c}"' for c in writes]
    names = [*_READS[table], *writes]
    if table == IDENTITY_DIRECTORY_EVENTS.name:
        reads.append(_TARGET_DOMAIN)
        names.append("_TargetDomain")
    found = store.distinct(table, reads, where)
    return reads, [dict(zip(names, key, strict=True)) for key in found]


def unknown_subjects(
    store: EventStore, index: IdentityIndex, where: AccountDirectory = no_domains
) -> list[Subject]:
    """The accounts stored events name that IdentityInfo does not know (computers and rows with
    no anchor left out)."""
    out: dict[Subject, None] = {}
    for table in _TABLES:
        for row in _stored(store, table, _MAYBE_UNKNOWN[table])[1]:
            for _, subject in subjects(table, row, where):
                named = subject.sid or subject.upn or subject.object_id or subject.name
                if named and not (subject.name or "").endswith("$") and not index.knows(subject):
                    out[subject] = None
    return list(out)


def reenrich(store: EventStore, index: IdentityIndex, where: AccountDirectory = no_domains) -> int:
    """Join every stored row again; rows whose answer changed (their account became known, or its
    identity changed) are updated. Returns rows updated."""
    changed = 0
    for table in _TABLES:
        writes = identity_columns(table)
        reads, stored = _stored(store, table)
        updates = []
        for row in stored:
            key = list(row.values())
            new = joined(table, row, index, where)
            if any(new[c] != row[c] for c in writes):
                updates.append([*key, *(new[c] for c in writes)])
        if updates:
            changed += store.update_matching(table, reads, list(writes), updates)
    return changed
