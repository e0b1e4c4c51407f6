"""Read-only hunting queries in KQL (translated by duckdb-kql) or DuckDB SQL, under time and row limits.

Four walls keep a query from changing anything or reaching outside the store: exactly one
statement, and it must be a SELECT; it runs in a READ ONLY transaction that is rolled back; the
connection has no filesystem access and a locked configuration; a timer interrupts it at the
time limit. Errors name the line and column at fault.
"""

from __future__ import annotations

import enum
import functools
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb

from clampdown.errors import InvalidInput
from clampdown.hunting.kql_worker import KqlTranslator, TranslationFailed, TranslationTimedOut
from clampdown.hunting.store import EventStore
from clampdown.limits import (
    KQL_TRANSLATION_SECONDS,
    MAX_QUERY,
    MAX_QUERY_NESTING,
    MAX_RESULT_BYTES,
)

MAX_QUERY_LENGTH = MAX_QUERY
_SQL_START = re.compile(
    r"^\s*(select|with|from|values|insert|update|delete|copy|attach|detach|create|drop|alter|pragma|set|"
    r"reset|call|install|load|export|import|begin|commit|rollback|checkpoint|vacuum|use|describe|show|"
    r"summarize|explain|truncate|merge|prepare|execute|deallocate|\()\b",
    re.IGNORECASE,
)
FETCH_CHUNK_ROWS = 64


class Language(enum.StrEnum):
    KQL = "kql"
    SQL = "sql"


class QueryError(InvalidInput):
    """The query is wrong or not allowed; `line` and `column` point at the part at fault (1-based)."""

    code = "invalid_query"

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f"line {line}, column {column}: " if line is not None and column is not None else ""
        super().__init__(where + message)
        self.line = line
        self.column = column


class QueryTimeout(QueryError):
    code = "query_timeout"


@dataclass(frozen=True)
class QueryResult:
    """Columns, JSON-safe rows, whether rows were cut at a limit (and which), and the SQL that ran."""

    language: Language
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_seconds: float
    sql: str
    truncated_by: str | None = None  # "rows" (the row limit) or "bytes" (MAX_RESULT_BYTES)


def detect_language(query: str) -> Language:
    """SQL when the text starts like an SQL statement, else KQL (which starts with a table or `let`)."""
    return Language.SQL if _SQL_START.match(query) else Language.KQL


def nesting_depth(query: str) -> int:
    """How many brackets ((, [, {) a KQL query has open at its deepest, outside strings and comments."""
    depth = deepest = 0
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if query.startswith("//", i):
            end = query.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if query.startswith("```", i):
            end = query.find("```", i + 3)
            i = n if end < 0 else end + 3
            continue
        if c == "@" and i + 1 < n and query[i + 1] in "'\"":
            # A verbatim string: no escapes, the quote doubled to include it.
            quote, i = query[i + 1], i + 2
            while i < n and not (query[i] == quote and query[i + 1 : i + 2] != quote):
                i += 2 if query[i] == quote else 1
            i += 1
            continue
        if c in "'\"":
            i += 1
            while i < n and query[i] != c:
                i += 2 if query[i] == "\\" else 1
            i += 1
            continue
        if c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


_translator = KqlTranslator()


@functools.lru_cache(maxsize=256)
def _translated(query: str, timeout: float) -> str:
    # Only successes are cached (errors raise): a rule's query is translated once, not every run.
    try:
        answer = _translator.translate(query, timeout)
    except TranslationTimedOut:
        raise QueryTimeout(
            f"query: the KQL translation took longer than {timeout:g} seconds and was stopped;"
            " simplify the query"
        ) from None
    except TranslationFailed as exc:
        raise QueryError(f"query: {exc}") from None
    if answer.sql is None:
        raise QueryError(answer.error or "KQL error", answer.line, answer.column)
    return answer.sql


def translate_kql(query: str, timeout: float = KQL_TRANSLATION_SECONDS) -> str:
    """The DuckDB SQL for a KQL query, translated in a child process stopped after `timeout` seconds;
    QueryError with the position on a mistake, before any parsing if it is nested too deeply."""
    depth = nesting_depth(query)
    if depth > MAX_QUERY_NESTING:
        raise QueryError(f"query: brackets nested {depth} deep; at most {MAX_QUERY_NESTING} are allowed")
    return _translated(query, min(timeout, KQL_TRANSLATION_SECONDS))


def _position(sql: str, message: str) -> tuple[int | None, int | None]:
    """DuckDB reports a character offset ("at or near", "LINE 1:" with a caret); turn it into line/column."""
    caret = re.search(r"LINE (\d+): ?(.*)\n(\s*)\^", message)
    if caret:
        return int(caret.group(1)), len(caret.group(3)) - len(f"LINE {caret.group(1)}: ") + 1
    return None, None


def _checked_select(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        line, column = _position(sql, str(exc))
        raise QueryError(_first_line(exc), line, column) from None
    if len(statements) != 1:
        raise QueryError(f"give exactly one query; found {len(statements)} statements")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = getattr(kind, "name", str(kind))
        raise QueryError(f"only read-only queries are allowed; this is a {name} statement", 1, 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    head = text.split("\n\nLINE")[0].strip()
    return head.splitlines()[0] if head else type(exc).__name__


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time_of_day):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return value


def run_query(
    store: EventStore,
    query: str,
    language: Language | None = None,
    *,
    max_rows: int | None = None,
    timeout_seconds: float | None = None,
    max_bytes: int = MAX_RESULT_BYTES,
) -> QueryResult:
    """Run one read-only query (blocking); at most `max_rows` rows and `max_bytes` of them as JSON,
    stopped after the time limit (which the KQL translation counts against)."""
    text = (query or "").strip()
    if not text:
        raise QueryError("the query is empty")
    if len(text) > MAX_QUERY_LENGTH or "\x00" in text:
        raise QueryError(f"the query must be at most {MAX_QUERY_LENGTH} characters with no NUL")
    lang = language or detect_language(text)
    timeout = min(
        timeout_seconds or store.settings.query_timeout_seconds, store.settings.query_timeout_seconds
    )
    started = time.monotonic()
    sql = translate_kql(text, timeout) if lang is Language.KQL else text
    limit = min(max_rows or store.settings.max_rows, store.settings.max_rows)
    left = max(0.1, timeout - (time.monotonic() - started))
    with store.connect() as con:
        _checked_select(con, sql)
        timer = threading.Timer(left, con.interrupt)
        con.execute("BEGIN TRANSACTION READ ONLY")
        timer.start()
        try:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            # KQL's dynamic values (make_set, pack ...) come back as JSON text: return them as JSON.
            json_columns = {i for i, d in enumerate(cursor.description or []) if str(d[1]) == "JSON"}
            rows, truncated_by = _fetch(cursor, json_columns, limit, max_bytes)
        except duckdb.InterruptException:
            raise QueryTimeout(f"the query ran longer than {timeout:g} seconds and was stopped") from None
        except duckdb.Error as exc:
            if time.monotonic() - started >= timeout:
                raise QueryTimeout(f"the query ran longer than {timeout:g} seconds and was stopped") from None
            line, column = _position(sql, str(exc)) if lang is Language.SQL else (None, None)
            raise QueryError(_first_line(exc), line, column) from None
        finally:
            timer.cancel()
            con.execute("ROLLBACK")
    elapsed = time.monotonic() - started
    return QueryResult(lang, columns, rows, truncated_by is not None, elapsed, sql, truncated_by)


def _fetch(
    cursor: duckdb.DuckDBPyConnection, json_columns: set[int], limit: int, max_bytes: int
) -> tuple[list[list[Any]], str | None]:
    """At most `limit` rows and `max_bytes` of them as JSON, fetched a chunk at a time so a huge
    result is never held whole; the second value says which limit cut the rows, if any."""
    rows: list[list[Any]] = []
    size = 2  # the brackets of the list
    while True:
        chunk = cursor.fetchmany(FETCH_CHUNK_ROWS)
        if not chunk:
            return rows, None
        for raw in chunk:
            if len(rows) == limit:
                return rows, "rows"
            row = [
                json.loads(v) if i in json_columns and isinstance(v, str) else _json_value(v)
                for i, v in enumerate(raw)
            ]
            size += len(json.dumps(row, default=str, ensure_ascii=False).encode()) + 1
            if size > max_bytes:
                return rows, "bytes"
            rows.append(row)


def account_values(columns: list[str], rows: list[list[Any]], column: str) -> list[str]:
    """The distinct, non-empty values of one result column, in first-seen order."""
    if column not in columns:
        raise InvalidInput(f"no column {column!r} in the results; columns: {', '.join(columns)}")
    index = columns.index(column)
    values = (str(row[index]).strip() for row in rows if row[index] not in (None, ""))
    return list(dict.fromkeys(v for v in values if v))
