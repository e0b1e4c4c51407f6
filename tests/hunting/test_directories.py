"""Issue 17: each domain controller's event records the AD directory it came from, told from the DC's
name and domain against each directory's configured domain (or named by the caller); an event of
no configured domain, or of two, names none. IdentityInfo rows name the directory their account was
looked up in, and a user scoped to one directory sees its DC events and identities only. A store
made before the Directory column keeps working."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.auth.service import AuthService
from clampdown.config import Settings
from clampdown.connectors.base import Connector
from clampdown.connectors.registry import build_connectors
from clampdown.errors import InvalidInput
from clampdown.hunting.directories import (
    ADDomain,
    DirectoryMatcher,
    ad_domains,
    directory_matcher,
    dns_domain,
)
from clampdown.hunting.files import read_evtx, read_jsonl
from clampdown.hunting.identity import refresh_identity_info
from clampdown.hunting.ingest import ingest_windows
from clampdown.hunting.query import run_query
from clampdown.hunting.schema import EVENT_TABLES, EventTable
from clampdown.hunting.service import HuntingService
from clampdown.hunting.settings import HuntingSettings
from clampdown.hunting.store import Batch, EventStore
from clampdown.hunting.windows import WindowsEvent
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_OPERATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown.store.auth import AuthStore
from tests.hunting.evtx_writer import write_evtx
from tests.hunting.scenario import DIRECTORY_ROWS, LOGON_ROWS, START, security_events, write_jsonl
from tests.lab_config import clampdown, create_user_token, memory_provider, write_config

CORP_DC, EMEA_DC = "DC1.corp.example.test", "dc7.emea.example.test"
ROWS = LOGON_ROWS + DIRECTORY_ROWS


def _ad(base_dn: str, *servers: Any, **more: Any) -> dict[str, Any]:
    return {
        "kind": "ad",
        "servers": list(servers),
        "base_dn": base_dn,
        "bind_user": "svc-clampdown@example.test",
        "bind_password": "not-used",
        **more,
    }


# Two forests as an operator configures them: corp lists its DC by name and its NetBIOS domain;
# emea reaches its DC by address (naming it for TLS) and searches one OU of its domain.
AD_PROVIDERS = {
    "corp-ad": _ad("DC=corp,DC=example,DC=test", "ldaps://dc1.corp.example.test", netbios_domain="CORP"),
    "emea-ad": _ad(
        "OU=Staff,DC=emea,DC=example,DC=test",
        {"url": "ldaps://192.0.2.7", "name": "dc2.emea.example.test"},
    ),
}


@pytest.fixture(scope="module")
def connectors() -> dict[str, Connector]:
    return build_connectors(Settings(providers=AD_PROVIDERS))


def _event(computer: str, event_id: int = 4625, **data: str) -> WindowsEvent:
    return WindowsEvent(event_id, START, computer, "Security", 1, data, "evtx")


def test_each_directory_names_its_domain(connectors: dict[str, Connector]) -> None:
    assert dns_domain("OU=Staff,DC=emea,DC=example,DC=test") == "emea.example.test"
    assert dns_domain("CN=Users,DC=Corp,DC=Example,DC=Test") == "corp.example.test"
    assert ad_domains(connectors) == (
        ADDomain("corp-ad", "corp.example.test", "corp", frozenset({"dc1.corp.example.test"})),
        ADDomain("emea-ad", "emea.example.test", None, frozenset({"dc2.emea.example.test"})),
    )


PLACED = [
    (_event("DC1.corp.example.test"), "corp-ad"),  # a DC the directory lists
    (_event("dc2.emea.example.test."), "emea-ad"),  # listed by name beside its address
    (_event("dc9.CORP.example.test"), "corp-ad"),  # any DC of the domain, listed or not
    (_event("dc3.emea.example.test", TargetDomainName="CORP"), "emea-ad"),  # the DC decides, not the account
    (_event("dc1.other.test"), None),  # a domain no directory configures
    (_event("dc1.child.corp.example.test"), None),  # a child domain is not its parent's directory
    (_event("example.test"), None),
    (_event("dc1", TargetDomainName="whatever"), "corp-ad"),  # a short name a directory lists
    (_event("DC5", TargetDomainName="CORP"), "corp-ad"),  # no domain: the NetBIOS domain named
    (_event("DC5", TargetUserName="bob@EMEA.EXAMPLE.TEST"), "emea-ad"),  # a Kerberos realm
    (_event("DC5", SubjectDomainName="NT AUTHORITY", TargetDomainName="emea.example.test"), "emea-ad"),
    (_event("DC5", TargetDomainName="CORP", SubjectDomainName="emea.example.test"), None),  # two: none
    (_event("DC5", 4740, TargetDomainName="CORP"), None),  # 4740's TargetDomainName is a computer
    (_event("", TargetDomainName="LAB"), None),
]


@pytest.mark.parametrize(("event", "directory"), PLACED)
def test_an_event_is_placed_by_its_domain_controller(
    connectors: dict[str, Connector], event: WindowsEvent, directory: str | None
) -> None:
    assert directory_matcher(connectors).place(event).directory == directory


def test_two_directories_of_one_domain_are_never_guessed_between() -> None:
    both = DirectoryMatcher(
        (ADDomain("staff", "corp.example.test"), ADDomain("admins", "corp.example.test", "corp"))
    )
    placed = both.place(_event("dc1.corp.example.test"))
    assert (placed.directory, placed.candidates, placed.ambiguous) == (None, ("admins", "staff"), True)
    unknown = both.place(_event("dc1.other.test"))
    assert (unknown.directory, unknown.ambiguous) == (None, False)


def _two_forests(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A day on corp's DC, the same day on an emea DC (the same user names: two people), and a few
    events of a DC in a domain nobody configured."""
    corp = write_evtx(tmp_path / "corp.evtx", security_events(computer=CORP_DC))
    emea = write_jsonl(tmp_path / "emea.ndjson", security_events(computer=EMEA_DC))
    other = write_evtx(tmp_path / "other.evtx", security_events(computer="dc1.other.test")[:10])
    return corp, emea, other


def test_ingest_tags_each_forests_events_and_a_scoped_query_sees_its_own(
    event_store: EventStore, connectors: dict[str, Connector], tmp_path: Path
) -> None:
    corp, emea, other = _two_forests(tmp_path)
    matcher = directory_matcher(connectors)
    first = ingest_windows(event_store, read_evtx(corp), directories=matcher)
    assert (first.directories, first.no_directory, first.ambiguous) == ({"corp-ad": ROWS}, 0, 0)
    second = ingest_windows(event_store, read_jsonl(emea), directories=matcher)
    assert second.directories == {"emea-ad": ROWS}
    third = ingest_windows(event_store, read_evtx(other), directories=matcher)
    assert (third.directories, third.no_directory, third.ambiguous, third.placed_earlier) == ({}, 10, 0, 0)
    assert event_store.unplaced_computers() == ["dc1.other.test"]

    tagged = (
        "SELECT DestinationDeviceName, Source, Directory, count(*) FROM (SELECT * FROM IdentityLogonEvents"
        " UNION ALL BY NAME SELECT * FROM IdentityDirectoryEvents) GROUP BY ALL ORDER BY 1"
    )
    assert run_query(event_store, tagged).rows == [
        [CORP_DC, "evtx", "corp-ad", ROWS],
        ["dc1.other.test", "evtx", None, 10],
        [EMEA_DC, "winlogbeat", "emea-ad", ROWS],
    ]
    computers = "SELECT DISTINCT DestinationDeviceName FROM IdentityLogonEvents ORDER BY 1"
    emea_only = run_query(event_store, computers, sources=frozenset({"emea-ad"}))
    assert emea_only.rows == [[EMEA_DC]]
    assert run_query(event_store, computers, sources=frozenset({"corp-ad", "emea-ad"})).rows == [
        [CORP_DC],
        [EMEA_DC],
    ]
    assert len(run_query(event_store, computers).rows) == 3  # unscoped: the unknown DC's too


def test_the_caller_names_the_directory_of_a_file(
    event_store: EventStore, connectors: dict[str, Connector], tmp_path: Path
) -> None:
    _, _, other = _two_forests(tmp_path)
    report = ingest_windows(
        event_store, read_evtx(other), directories=directory_matcher(connectors, "emea-ad")
    )
    assert (report.directories, report.no_directory) == ({"emea-ad": 10}, 0)
    with pytest.raises(
        InvalidInput, match="'nope' is not a configured AD directory; configured: corp-ad, emea-ad"
    ):
        directory_matcher(connectors, "nope")


def test_an_ambiguous_ingest_is_counted_and_logged_once(
    event_store: EventStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    both = DirectoryMatcher((ADDomain("staff", "corp.example.test"), ADDomain("admins", "corp.example.test")))
    corp = write_evtx(tmp_path / "corp.evtx", security_events(computer=CORP_DC))
    with caplog.at_level(logging.INFO, logger="clampdown.hunting.ingest"):
        report = ingest_windows(event_store, read_evtx(corp), batch_size=25, directories=both)
    assert (report.no_directory, report.ambiguous, report.directories) == (ROWS, ROWS, {})
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{ROWS} events stored without a directory" in warnings[0]
    assert "'DC1.corp.example.test': admins, staff" in warnings[0]
    assert run_query(
        event_store, "SELECT count(*) FROM IdentityLogonEvents WHERE Directory IS NULL"
    ).rows == [[LOGON_ROWS]]


# --- IdentityInfo and the service, with two AD directories holding people of the same names -----


@dataclass
class Env:
    service: HuntingService
    connectors: dict[str, Connector]
    admin: Principal
    emea_operator: Principal


@pytest.fixture
async def env(engine: AsyncEngine, tmp_path: Path, event_store: EventStore) -> Env:
    auth = AuthService(AuthStore(engine))
    providers = {name: memory_provider("ad", tmp_path / f"{name}.db") for name in ("corp-ad", "emea-ad")}
    connectors = build_connectors(Settings(providers=providers))
    actions = ActionService(ActionStore(engine), connectors, record_denial=auth.record_denial)
    admin = await auth.principal_for(
        await auth.create_user("admin", frozenset({GLOBAL_ADMINISTRATOR}), None), "api"
    )
    operator = await auth.principal_for(
        await auth.create_user("emea-op", frozenset({SECURITY_OPERATOR}), None), "api"
    )
    service = HuntingService(event_store, actions, auth, auth.record_denial)
    return Env(service, connectors, admin, replace(operator, scope=frozenset({"emea-ad"})))


async def test_identity_info_names_each_accounts_directory_and_scopes_see_their_own(
    env: Env, tmp_path: Path
) -> None:
    store = env.service.store
    corp, emea, other = _two_forests(tmp_path)
    # The memory directories configure no domain: the caller names each file's directory.
    ingest_windows(store, read_evtx(corp), directories=DirectoryMatcher(fixed="corp-ad"))
    ingest_windows(store, read_jsonl(emea), directories=DirectoryMatcher(fixed="emea-ad"))
    ingest_windows(store, read_evtx(other))  # no directory
    days = (datetime.now(UTC) - START).days + 1
    written = await refresh_identity_info(store, env.connectors, days=days)

    per_directory = "SELECT Directory, count(*) FROM IdentityInfo GROUP BY ALL ORDER BY 1"
    people = run_query(store, "SELECT count(DISTINCT AccountName) FROM IdentityInfo").rows[0][0]
    # Each forest's bob is a row of his own; the other domain's events name no directory, and
    # with two AD directories configured they are looked up in neither.
    assert run_query(store, per_directory).rows == [["corp-ad", people], ["emea-ad", people]]
    assert written == 2 * people

    identities = "SELECT Directory, count(*) FROM IdentityInfo GROUP BY ALL"
    assert (await env.service.query(env.emea_operator, identities)).rows == [["emea-ad", people]]
    computers = "IdentityLogonEvents | summarize by DestinationDeviceName, Directory"
    assert (await env.service.query(env.emea_operator, computers)).rows == [[EMEA_DC, "emea-ad"]]
    seen = await env.service.query(env.admin, computers + " | order by DestinationDeviceName asc")
    assert seen.rows == [[CORP_DC, "corp-ad"], ["dc1.other.test", None], [EMEA_DC, "emea-ad"]]

    again = await refresh_identity_info(store, env.connectors, days=days)  # replaces, never duplicates
    assert again == written and run_query(store, "SELECT count(*) FROM IdentityInfo").rows == [[written]]


# --- A store made before the Directory column ---------------------------------------------------


def _old_file(path: Path) -> None:
    """An event file as the version before Directory made it, with a pulled row, a DC row and an
    IdentityInfo row."""
    con = duckdb.connect(str(path))
    for table in EVENT_TABLES:
        # That version's columns: those before Directory (the ones after it came later).
        kept = table.columns[: table.column_names.index("Directory")]
        old = EventTable(table.name, table.doc, tuple(kept))
        con.execute(old.ddl())
    con.execute(
        "INSERT INTO IdentityDirectoryEvents (Timestamp, ActionType, Application, TargetAccountUpn, Source,"
        " ReportId) VALUES ('2026-11-02 08:00:00+00', 'Suspend Okta user', 'Okta', 'bob@emea.example',"
        " 'emea-okta', 'okta-1')"
    )
    con.execute(
        "INSERT INTO IdentityLogonEvents (Timestamp, ActionType, AccountName, DestinationDeviceName, Source,"
        " ReportId) VALUES ('2026-11-02 08:00:00+00', 'LogonFailed', 'old', 'dc7.emea.example.test', 'evtx',"
        " 'dc7.emea.example.test:security:1')"
    )
    con.execute(
        "INSERT INTO IdentityInfo (Timestamp, Provider, AccountObjectId, AccountName)"
        " VALUES ('2026-11-02 08:00:00+00', 'ad', 'id-alice.martin', 'alice.martin')"
    )
    con.close()


def test_a_store_made_before_directories_keeps_working(
    tmp_path: Path, connectors: dict[str, Connector]
) -> None:
    path = tmp_path / "old.duckdb"  # a keyword: DuckDB's plans quote the catalog's name
    _old_file(path)
    store = EventStore(path, HuntingSettings(query_timeout_seconds=5))
    store.initialize()
    for table in EVENT_TABLES:
        columns = run_query(store, f"SELECT * FROM {table.name} LIMIT 0").columns
        assert columns == table.column_names  # the same columns, in the same order, as a new file
    # A pulled row names its directory (its Source was already that name); a DC row names none.
    tags = (
        "SELECT Source, Directory FROM IdentityDirectoryEvents UNION ALL"
        " SELECT Source, Directory FROM IdentityLogonEvents ORDER BY 1"
    )
    assert run_query(store, tags).rows == [["emea-okta", "emea-okta"], ["evtx", None]]
    emea_okta = frozenset({"emea-okta"})
    assert run_query(
        store, "SELECT TargetAccountUpn FROM IdentityDirectoryEvents", sources=emea_okta
    ).rows == [["bob@emea.example"]]

    # New events go in beside the old ones, and the old DC event is placed by its DC's name now
    # that directories are configured; opening the file again changes nothing more.
    corp = write_evtx(tmp_path / "corp.evtx", security_events(computer=CORP_DC))
    report = ingest_windows(store, read_evtx(corp), directories=directory_matcher(connectors))
    assert (report.added, report.placed_earlier) == (ROWS, 1)
    again = EventStore(path, HuntingSettings())
    assert again.count("IdentityLogonEvents") == LOGON_ROWS + 1
    by_directory = "SELECT Directory, count(*) FROM IdentityLogonEvents GROUP BY ALL ORDER BY 1"
    assert run_query(again, by_directory).rows == [["corp-ad", LOGON_ROWS], ["emea-ad", 1]]
    assert again.unplaced_computers() == []

    # The refresh's row of an account replaces the row written before directories were recorded.
    fresh = {"Timestamp": datetime.now(UTC), "Provider": "ad", "AccountObjectId": "id-alice.martin"}
    again.append(
        Batch({"IdentityInfo": [fresh | {"AccountName": "alice.martin", "Directory": "corp-ad"}]}, {})
    )
    assert run_query(again, "SELECT AccountName, Directory FROM IdentityInfo").rows == [
        ["alice.martin", "corp-ad"]
    ]


def test_the_cli_places_events_and_takes_a_directory(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "clampdown.toml", f"sqlite:///{tmp_path / 'clampdown.db'}", providers=AD_PROVIDERS
    )
    assert clampdown(config, "db", "upgrade").returncode == 0
    token = create_user_token(config, "hunter", GLOBAL_ADMINISTRATOR)
    corp, emea, _ = _two_forests(tmp_path)
    placed = clampdown(config, "ingest", "evtx", str(corp), "--json", token=token)
    assert placed.returncode == 0, placed.stderr
    assert json.loads(placed.stdout)["directories"] == {"corp-ad": ROWS}
    named = clampdown(config, "ingest", "jsonl", str(emea), "--directory", "corp-ad", token=token)
    assert named.returncode == 0, named.stderr
    refused = clampdown(config, "ingest", "jsonl", str(emea), "--directory", "okta", token=token)
    assert refused.returncode != 0
    assert "'okta' is not a configured AD directory; configured: corp-ad, emea-ad" in " ".join(
        refused.stderr.split()
    )
    store = EventStore(tmp_path / "clampdown.events.duckdb", HuntingSettings())
    query = "SELECT DestinationDeviceName, Directory FROM IdentityLogonEvents GROUP BY ALL ORDER BY 1"
    assert run_query(store, query).rows == [[CORP_DC, "corp-ad"], [EMEA_DC, "corp-ad"]]
