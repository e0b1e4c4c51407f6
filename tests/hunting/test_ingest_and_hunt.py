"""EVTX and Winlogbeat files in, KQL and SQL hunts out, with the rows the known day must give."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from clampdown.hunting.files import read_evtx, read_jsonl
from clampdown.hunting.ingest import ingest_windows
from clampdown.hunting.query import Language, run_query
from clampdown.hunting.store import EventStore
from tests.hunting.evtx_writer import write_evtx
from tests.hunting.scenario import (
    BRUTE_FAILURES,
    BRUTE_IP,
    BRUTE_USER,
    DIRECTORY_ROWS,
    LOGON_ROWS,
    SPRAY_IP,
    SPRAY_USERS,
    security_events,
)

BRUTE_FORCE_KQL = """IdentityLogonEvents
| where ActionType == "LogonFailed"
| summarize Failures = count(), First = min(Timestamp) by AccountName, IPAddress
| where Failures >= 10
| order by Failures desc"""

SPRAY_SQL = """SELECT IPAddress, count(DISTINCT AccountName) AS Accounts, count(*) AS Failures
FROM IdentityLogonEvents
WHERE ActionType = 'LogonFailed'
GROUP BY IPAddress
HAVING count(DISTINCT AccountName) >= 10"""


def _ingest_evtx(store: EventStore, path: Path) -> None:
    report = ingest_windows(store, read_evtx(path), batch_size=25)
    assert report.read == len(security_events())


def test_evtx_ingest_fills_both_tables(event_store: EventStore, day_evtx: Path) -> None:
    report = ingest_windows(event_store, read_evtx(day_evtx), batch_size=25)
    assert report.added == LOGON_ROWS + DIRECTORY_ROWS
    assert report.not_kept == 1  # the 4634 logoff
    assert event_store.count("IdentityLogonEvents") == LOGON_ROWS
    assert event_store.count("IdentityDirectoryEvents") == DIRECTORY_ROWS
    lockout = run_query(
        event_store,
        'IdentityDirectoryEvents | where ActionType == "Account locked out"'
        " | project TargetAccountName, DeviceName",
    )
    assert lockout.rows == [[BRUTE_USER, "KALI"]]


def test_brute_force_hunt_in_kql(event_store: EventStore, day_evtx: Path) -> None:
    _ingest_evtx(event_store, day_evtx)
    result = run_query(event_store, BRUTE_FORCE_KQL)
    assert result.language is Language.KQL
    assert result.columns == ["AccountName", "IPAddress", "Failures", "First"]
    assert [r[:3] for r in result.rows] == [[BRUTE_USER, BRUTE_IP, BRUTE_FAILURES]]
    assert result.rows[0][3] == "2026-11-02T09:00:00+00:00"


def test_password_spray_hunt_in_sql_and_kql(event_store: EventStore, day_jsonl: Path) -> None:
    ingest_windows(event_store, read_jsonl(day_jsonl))
    sql = run_query(event_store, SPRAY_SQL)
    assert sql.language is Language.SQL
    assert sql.rows == [[SPRAY_IP, len(SPRAY_USERS), len(SPRAY_USERS)]]
    kql = run_query(
        event_store,
        'IdentityLogonEvents | where ActionType == "LogonFailed" and IPAddress == "203.0.113.7"'
        " | summarize by AccountName | order by AccountName asc",
    )
    assert [r[0] for r in kql.rows] == SPRAY_USERS


def test_evtx_and_winlogbeat_give_the_same_rows(tmp_path: Path, day_evtx: Path, day_jsonl: Path) -> None:
    from clampdown.hunting.settings import HuntingSettings

    stores = [EventStore(tmp_path / f"{n}.duckdb", HuntingSettings()) for n in ("a", "b")]
    ingest_windows(stores[0], read_evtx(day_evtx))
    ingest_windows(stores[1], read_jsonl(day_jsonl))
    query = (
        "SELECT * EXCLUDE (Source) FROM IdentityLogonEvents UNION ALL BY NAME "
        "SELECT * EXCLUDE (Source) FROM IdentityDirectoryEvents ORDER BY ReportId"
    )
    a, b = (run_query(s, query, max_rows=1000).rows for s in stores)
    assert a == b and len(a) == LOGON_ROWS + DIRECTORY_ROWS


def test_reingest_and_later_export_add_only_new_events(event_store: EventStore, tmp_path: Path) -> None:
    events = security_events()
    first = write_evtx(tmp_path / "first.evtx", events[:100])
    later = write_evtx(tmp_path / "later.evtx", events)  # a later export repeats the first 100
    assert ingest_windows(event_store, read_evtx(first)).added > 0
    again = ingest_windows(event_store, read_evtx(first))
    assert (again.added, again.already_stored) == (0, 100)
    rest = ingest_windows(event_store, read_evtx(later))
    assert rest.already_stored == 100
    assert event_store.count("IdentityLogonEvents") == LOGON_ROWS


class _FailingFile(io.RawIOBase):
    """A file whose reads fail after `limit` bytes: the disk or the process going away mid-ingest."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data, self._limit, self._pos = data, limit, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = {0: offset, 1: self._pos + offset, 2: len(self._data) + offset}[whence]
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._limit:
            raise OSError("device went away")
        chunk = self._data[self._pos : min(self._pos + len(buffer), self._limit)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


def test_restart_in_the_middle_of_an_ingest_equals_one_clean_run(tmp_path: Path) -> None:
    from clampdown.hunting.settings import HuntingSettings

    events = security_events() * 1  # one chunk holds ~40 records: several chunks
    many = [e for i in range(20) for e in security_events(first_record=1 + i * len(events))]
    path = write_evtx(tmp_path / "big.evtx", many)
    clean = EventStore(tmp_path / "clean.duckdb", HuntingSettings())
    ingest_windows(clean, read_evtx(path), batch_size=100)

    crashed = EventStore(tmp_path / "crashed.duckdb", HuntingSettings())
    data = path.read_bytes()
    with pytest.raises((OSError, RuntimeError)):
        ingest_windows(crashed, read_evtx(_FailingFile(data, len(data) // 2)), batch_size=100)  # type: ignore[arg-type]
    partial = crashed.count("IdentityLogonEvents")
    assert 0 < partial < clean.count("IdentityLogonEvents")
    ingest_windows(crashed, read_evtx(path), batch_size=100)
    for table in ("IdentityLogonEvents", "IdentityDirectoryEvents"):
        assert crashed.count(table) == clean.count(table)
    distinct = run_query(crashed, "SELECT count(DISTINCT ReportId) FROM IdentityLogonEvents").rows[0][0]
    assert distinct == clean.count("IdentityLogonEvents")
