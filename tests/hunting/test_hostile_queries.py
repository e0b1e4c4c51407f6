"""Queries that try to write, read files, attach databases, lift limits or run forever are refused
or stopped, and the store is unchanged afterwards."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from clampdown.hunting.files import read_jsonl
from clampdown.hunting.ingest import ingest_windows
from clampdown.hunting.query import Language, QueryError, QueryTimeout, run_query
from clampdown.hunting.store import EventStore

COUNTS = (
    "SELECT (SELECT count(*) FROM IdentityLogonEvents), (SELECT count(*) FROM IdentityDirectoryEvents),"
    " (SELECT count(*) FROM clampdown_meta.cursors),"
    " (SELECT count(*) FROM information_schema.tables)"
)

REFUSED = [
    "INSERT INTO IdentityLogonEvents (AccountName) VALUES ('mallory')",
    "DELETE FROM IdentityLogonEvents",
    "UPDATE IdentityLogonEvents SET AccountName = 'x'",
    "DROP TABLE IdentityLogonEvents",
    "CREATE TABLE stolen AS SELECT * FROM IdentityLogonEvents",
    "COPY IdentityLogonEvents TO '/tmp/stolen.csv'",
    "COPY (SELECT 1) TO '/tmp/out.parquet' (FORMAT parquet)",
    "ATTACH '/tmp/other.duckdb' AS other",
    "ATTACH ':memory:' AS scratch",
    "SET enable_external_access = true",
    "PRAGMA enable_profiling",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CHECKPOINT",
    "EXPORT DATABASE '/tmp/dump'",
    "SELECT 1; DELETE FROM IdentityLogonEvents",
    "SELECT * FROM IdentityLogonEvents; DROP TABLE IdentityLogonEvents",
    "CALL pragma_version()",
    "BEGIN TRANSACTION",
]

FILE_READS = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM glob('/etc/*')",
    "SELECT * FROM read_json_auto('/etc/os-release')",
    "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
    "WITH x AS (SELECT * FROM read_csv_auto('/etc/shadow')) SELECT * FROM x",
    "SELECT * FROM IdentityLogonEvents WHERE AccountName IN (SELECT * FROM read_csv('/etc/passwd'))",
]


@pytest.fixture
def loaded(event_store: EventStore, day_jsonl: Path) -> EventStore:
    ingest_windows(event_store, read_jsonl(day_jsonl))
    return event_store


def _fingerprint(store: EventStore) -> tuple[object, str]:
    counts = run_query(store, COUNTS).rows[0]
    rows = run_query(store, "SELECT * FROM IdentityLogonEvents ORDER BY ReportId", max_rows=1000).rows
    return counts, hashlib.sha256(repr(rows).encode()).hexdigest()


@pytest.mark.parametrize("query", REFUSED)
def test_statements_that_are_not_a_single_select_are_refused(loaded: EventStore, query: str) -> None:
    before = _fingerprint(loaded)
    with pytest.raises(QueryError) as refused:
        run_query(loaded, query, Language.SQL)
    assert "read-only" in refused.value.message or "exactly one query" in refused.value.message
    assert _fingerprint(loaded) == before


@pytest.mark.parametrize("query", FILE_READS)
def test_queries_cannot_read_the_filesystem(loaded: EventStore, query: str) -> None:
    with pytest.raises(QueryError) as refused:
        run_query(loaded, query, Language.SQL)
    message = refused.value.message.lower()
    assert "root:" not in message
    assert any(
        w in message for w in ("file system operations are disabled", "does not exist", "not in the catalog")
    )


def test_writes_hidden_in_functions_fail_inside_the_read_only_transaction(loaded: EventStore) -> None:
    before = _fingerprint(loaded)
    for query in (
        "SELECT nextval('clampdown_meta.ids')",
        "SELECT * FROM query('DELETE FROM IdentityLogonEvents')",
    ):
        with pytest.raises(QueryError):
            run_query(loaded, query, Language.SQL)
    assert _fingerprint(loaded) == before


def test_kql_that_would_write_is_refused(loaded: EventStore) -> None:
    before = _fingerprint(loaded)
    for query in (
        ".set-or-replace Stolen <| IdentityLogonEvents",
        ".drop table IdentityLogonEvents",
        ".append IdentityLogonEvents <| IdentityLogonEvents",
    ):
        with pytest.raises(QueryError):
            run_query(loaded, query, Language.KQL)
    assert _fingerprint(loaded) == before


def test_an_endless_join_is_stopped_at_the_time_limit(loaded: EventStore) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as stopped:
        run_query(
            loaded,
            "SELECT count(*) FROM IdentityLogonEvents a, IdentityLogonEvents b, IdentityLogonEvents c,"
            " IdentityLogonEvents d, IdentityLogonEvents e, range(1000000000) f",
            timeout_seconds=1,
        )
    assert time.monotonic() - started < 10
    assert "longer than 1 seconds" in stopped.value.message
    assert run_query(loaded, "SELECT count(*) FROM IdentityLogonEvents").rows[0][0] > 0


def test_kql_cross_join_is_stopped_too(loaded: EventStore) -> None:
    with pytest.raises(QueryTimeout):
        run_query(
            loaded,
            "IdentityLogonEvents | extend k = 1"
            + " | join kind=inner (IdentityLogonEvents | extend k = 1) on k" * 6
            + " | count",
            Language.KQL,
            timeout_seconds=1,
        )


def test_rows_are_cut_at_the_row_limit(loaded: EventStore) -> None:
    result = run_query(loaded, "SELECT * FROM range(1000000)", max_rows=50)
    assert len(result.rows) == 50 and result.truncated
    whole = run_query(loaded, "SELECT * FROM range(10)", max_rows=50)
    assert len(whole.rows) == 10 and not whole.truncated


def test_a_caller_cannot_raise_the_configured_limits(loaded: EventStore) -> None:
    result = run_query(loaded, "SELECT * FROM range(100000)", max_rows=10**9)
    assert len(result.rows) == loaded.settings.max_rows


def test_errors_point_at_the_offending_part(loaded: EventStore) -> None:
    with pytest.raises(QueryError) as sql_error:
        run_query(loaded, "SELECT AccountName\nFROM IdentityLogonEvents\nWHERE NoSuchColumn = 1")
    assert (sql_error.value.line, sql_error.value.column) == (3, 7)
    assert "NoSuchColumn" in sql_error.value.message
    with pytest.raises(QueryError) as kql_error:
        run_query(loaded, "IdentityLogonEvents\n| where ActionType == ")
    assert kql_error.value.line == 2
    assert kql_error.value.message.startswith("line 2, column")
    with pytest.raises(QueryError) as typo:
        run_query(loaded, "SELECT * FRM IdentityLogonEvents")
    assert (typo.value.line, typo.value.column) == (1, 14)


def test_deeply_nested_or_oversized_queries_are_refused(loaded: EventStore) -> None:
    for query, language in (
        ("print x = " + "(" * 3000 + "1" + ")" * 3000, Language.KQL),
        ("IdentityLogonEvents | where " + " and ".join(f"Port == {i}" for i in range(2000)), Language.KQL),
        ("SELECT " + "(" * 3000 + "1" + ")" * 3000, Language.SQL),
        ("SELECT 1 -- " + "x" * 40_000, Language.SQL),
    ):
        with pytest.raises(QueryError):
            run_query(loaded, query, language)
