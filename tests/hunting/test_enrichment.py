"""Issue 19: every event row names its account's UPN, SID, Entra object id and Okta id where a
configured directory knows the account, joined through IdentityInfo on strong anchors only: a
sAMAccountName within its own domain (CORP\\alice is not EMEA\\alice), a SID, a UPN; the event's own
columns are never overwritten; an ambiguous or contradicting match leaves the columns empty; a
refresh of IdentityInfo joins the rows already stored again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clampdown.hunting.cloud import entra_sign_in_row, okta_event_row
from clampdown.hunting.directories import ADDomain, DirectoryMatcher
from clampdown.hunting.enrichment import enrich_rows, load_index, reenrich
from clampdown.hunting.files import read_jsonl
from clampdown.hunting.ingest import ingest_windows
from clampdown.hunting.query import run_query
from clampdown.hunting.store import Batch, EventStore
from tests.hunting.evtx_writer import SecurityEvent
from tests.hunting.scenario import write_jsonl

CORP_DC, EMEA_DC = "dc1.corp.example.test", "dc2.emea.example.test"
S_CORP_ALICE, S_EMEA_ALICE, S_BOB, S_CARL = (
    f"S-1-5-21-{d}-1001" for d in ("1-1-1", "2-2-2", "1-1-2", "1-1-3")
)
README_HUNT = "IdentityLogonEvents | where ActionType == 'LogonFailed' | summarize count() by AccountUpn"
AT = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def matcher() -> DirectoryMatcher:
    """Two forests whose people share account names: CORP and EMEA, their NetBIOS names configured."""
    return DirectoryMatcher(
        (ADDomain("corp-ad", "corp.example.test", "corp"), ADDomain("emea-ad", "emea.example.test", "emea"))
    )


def _identity(provider: str, directory: str, object_id: str, upn: str, name: str | None = None,
              sid: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "Timestamp": datetime.now(UTC), "Provider": provider, "Directory": directory,
        "AccountObjectId": object_id, "AccountUpn": upn, "AccountName": name or upn, "OnPremSid": sid,
        "IsAccountEnabled": True,
    }  # fmt: skip


IDENTITIES = [
    _identity("ad", "corp-ad", "guid-corp-alice", "alice@corp.example.test", "alice", S_CORP_ALICE),
    _identity("ad", "emea-ad", "guid-emea-alice", "alice.m@emea.example.test", "alice", S_EMEA_ALICE),
    _identity("entra", "entra", "entra-alice", "alice@corp.example.test", "alice", S_CORP_ALICE),
    _identity("okta", "okta", "00u-alice", "alice@corp.example.test"),
    # Two accounts claim one name in CORP (a stale row): which one is never guessed.
    _identity("ad", "corp-ad", "guid-dup-1", "dup1@corp.example.test", "dup"),
    _identity("ad", "corp-ad", "guid-dup-2", "dup2@corp.example.test", "dup"),
    # Bob's login is in two Okta orgs: his Okta id is not one.
    _identity("ad", "corp-ad", "guid-bob", "bob@corp.example.test", "bob", S_BOB),
    _identity("okta", "okta", "00u-bob-1", "bob@corp.example.test"),
    _identity("okta", "okta-2", "00u-bob-2", "bob@corp.example.test"),
    _identity("ad", "corp-ad", "guid-carl", "carl@corp.example.test", "carl", S_CARL),
    _identity("okta", "okta", "00u-carl", "carl@corp.example.test"),
]


def _events() -> list[SecurityEvent]:
    out: list[SecurityEvent] = []

    def add(event_id: int, computer: str, **data: str) -> None:
        out.append(
            SecurityEvent(
                event_id, AT + timedelta(seconds=len(out)), len(out) + 1, list(data.items()), computer
            )
        )

    failed = {"Status": "0xc000006d", "SubStatus": "0xc000006a", "LogonType": "3", "IpAddress": "203.0.113.9"}
    for _ in range(3):
        add(4625, CORP_DC, TargetUserName="alice", TargetDomainName="CORP", **failed)
    for _ in range(2):  # EMEA's alice failing at a CORP DC (a trusted forest): EMEA's, not CORP's
        add(4625, CORP_DC, TargetUserName="alice", TargetDomainName="EMEA", **failed)
    add(4771, EMEA_DC, TargetUserName="alice", Status="0x18")  # no domain: the KDC's own account
    add(4625, CORP_DC, TargetUserName="alice", TargetDomainName="FOREIGN", **failed)  # no configured domain
    add(4625, CORP_DC, TargetUserName="dup", TargetDomainName="CORP", **failed)  # two accounts: ambiguous
    add(4625, CORP_DC, TargetUserName="bob", TargetDomainName="corp.example.test", **failed)
    ok = {"LogonType": "3", "AuthenticationPackageName": "Kerberos"}
    add(4624, CORP_DC, TargetUserName="alice", TargetDomainName="CORP", TargetUserSid=S_CORP_ALICE, **ok)
    # The name is alice's but the SID is nobody's IdentityInfo knows: a contradiction, not alice.
    add(
        4624, CORP_DC, TargetUserName="alice", TargetDomainName="CORP", TargetUserSid="S-1-5-21-9-9-9-9", **ok
    )
    add(
        4740,
        CORP_DC,
        TargetUserName="bob",
        TargetDomainName="KALI",
        SubjectUserName="DC1$",
        SubjectDomainName="CORP",
    )
    # Carl created with a UPN he no longer has: the event's own UPN stays.
    add(4720, CORP_DC, TargetUserName="carl", TargetDomainName="CORP",
        UserPrincipalName="carl@old.example.test",
        SubjectUserName="alice", SubjectDomainName="CORP")  # fmt: skip
    return out


def _rows(store: EventStore, sql: str) -> list[list[Any]]:
    return run_query(store, sql).rows


LOGONS = (
    "SELECT AccountName, AccountDomain, AccountUpn, AccountSid, AccountEntraObjectId, AccountOktaId,"
    " IdentityFilled"
    " FROM IdentityLogonEvents ORDER BY Timestamp"
)
CORP_ALICE = ["alice@corp.example.test", S_CORP_ALICE, "entra-alice", "00u-alice", "AccountUpn,AccountSid"]
EMEA_ALICE = ["alice.m@emea.example.test", S_EMEA_ALICE, None, None, "AccountUpn,AccountSid"]
NOTHING = [None, None, None, None, None]
EXPECTED_LOGONS = [
    *[["alice", "CORP", *CORP_ALICE]] * 3,
    *[["alice", "EMEA", *EMEA_ALICE]] * 2,
    ["alice", None, *EMEA_ALICE],
    ["alice", "FOREIGN", *NOTHING],
    ["dup", "CORP", *NOTHING],
    ["bob", "corp.example.test", "bob@corp.example.test", S_BOB, None, None, "AccountUpn,AccountSid"],
    ["alice", "CORP", "alice@corp.example.test", S_CORP_ALICE, "entra-alice", "00u-alice", "AccountUpn"],
    ["alice", "CORP", None, "S-1-5-21-9-9-9-9", None, None, None],
]


def _check_joined(store: EventStore) -> None:
    assert _rows(store, LOGONS) == EXPECTED_LOGONS
    targets = (
        "SELECT ActionType, AccountName, AccountUpn, TargetAccountName, TargetAccountUpn, TargetAccountSid,"
        " TargetAccountOktaId, IdentityFilled FROM IdentityDirectoryEvents ORDER BY Timestamp"
    )
    assert _rows(store, targets) == [
        # 4740's TargetDomainName is the caller's computer: bob is the DC's domain's.
        ["Account locked out", "DC1$", None, "bob", "bob@corp.example.test", S_BOB, None,
         "TargetAccountUpn,TargetAccountSid"],
        ["Account created", "alice", "alice@corp.example.test", "carl", "carl@old.example.test", S_CARL,
         "00u-carl", "AccountUpn,AccountSid,TargetAccountSid"],
    ]  # fmt: skip
    by_upn = _rows(store, README_HUNT + " | order by AccountUpn asc")
    assert by_upn == [
        [None, 2],
        ["alice.m@emea.example.test", 3],
        ["alice@corp.example.test", 3],
        ["bob@corp.example.test", 1],
    ]


def test_dc_events_are_joined_at_ingest_on_strong_anchors_only(
    event_store: EventStore, tmp_path: Path
) -> None:
    event_store.append(Batch({"IdentityInfo": IDENTITIES}, {}))
    report = ingest_windows(event_store, read_jsonl(write_jsonl(tmp_path / "dc.ndjson", _events())),
                            directories=matcher())  # fmt: skip
    assert report.added == 13 and report.identified == 10
    _check_joined(event_store)


def test_a_refresh_joins_the_rows_already_stored_and_follows_a_rename(
    event_store: EventStore, tmp_path: Path
) -> None:
    ingest_windows(
        event_store, read_jsonl(write_jsonl(tmp_path / "dc.ndjson", _events())), directories=matcher()
    )
    assert _rows(event_store, README_HUNT) == [[None, 9]]  # IdentityInfo knows nobody yet

    event_store.append(Batch({"IdentityInfo": IDENTITIES}, {}))
    where = matcher().account_directory
    assert reenrich(event_store, load_index(event_store), where) == 10  # the other 3 stay unknown
    _check_joined(event_store)
    assert reenrich(event_store, load_index(event_store), where) == 0  # nothing changed: nothing written

    # Alice of CORP is renamed: the UPN the join filled follows, what an event said stays.
    renamed = _identity(
        "ad", "corp-ad", "guid-corp-alice", "alice.r@corp.example.test", "alice", S_CORP_ALICE
    )
    event_store.append(Batch({"IdentityInfo": [renamed]}, {}))
    assert reenrich(event_store, load_index(event_store), where) == 5
    upns = "SELECT DISTINCT AccountUpn FROM IdentityLogonEvents WHERE AccountDomain = 'CORP' ORDER BY 1"
    assert _rows(event_store, upns) == [["alice.r@corp.example.test"], [None]]
    # The Entra and Okta accounts are still hers: linked by SID, and the old UPN agrees no more.
    assert _rows(event_store, "SELECT DISTINCT AccountEntraObjectId, AccountOktaId FROM IdentityLogonEvents"
                 " WHERE AccountUpn = 'alice.r@corp.example.test'") == [["entra-alice", None]]  # fmt: skip
    assert _rows(
        event_store, "SELECT TargetAccountUpn FROM IdentityDirectoryEvents WHERE EventId = 4720"
    ) == [["carl@old.example.test"]]


def test_pulled_sign_ins_gain_the_persons_sid_and_other_ids(event_store: EventStore) -> None:
    event_store.append(Batch({"IdentityInfo": IDENTITIES}, {}))
    index = load_index(event_store)
    entra = entra_sign_in_row(
        {"id": "si-1", "createdDateTime": "2026-11-02T08:00:00Z", "userId": "entra-alice",
         "userPrincipalName": "alice@corp.example.test", "status": {"errorCode": 50126}},
        "entra",
    )  # fmt: skip
    okta = okta_event_row(
        {"uuid": "ev-1", "published": "2026-11-02T08:01:00Z", "eventType": "user.session.start",
         "outcome": {"result": "FAILURE"},
         "actor": {"id": "00u-bob-2", "alternateId": "bob@corp.example.test"}},
        "okta-2",
    )  # fmt: skip
    assert okta is not None
    rows = {"CloudSignInEvents": [entra, okta[1]]}
    enrich_rows(rows, index)
    event_store.append(Batch(rows, {}))
    found = _rows(
        event_store,
        "SELECT Directory, AccountUpn, AccountSid, AccountEntraObjectId, AccountOktaId, IdentityFilled"
        " FROM CloudSignInEvents ORDER BY Timestamp",
    )
    assert found == [
        ["entra", "alice@corp.example.test", S_CORP_ALICE, "entra-alice", "00u-alice", None],
        # Bob of okta-2 is known by his own id; his SID comes from CORP's AD through his login.
        ["okta-2", "bob@corp.example.test", S_BOB, None, "00u-bob-2", None],
    ]
