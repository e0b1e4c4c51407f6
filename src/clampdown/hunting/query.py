"""Read-only hunting queries in KQL (translated by duckdb-kql) or DuckDB SQL, under time and row limits.

Four walls keep a query from changing anything or reaching outside the store: exactly one
statement, and it must be a SELECT; it runs in a READ ONLY transaction that is rolled back; the
connection has no filesystem access and a locked configuration; a timer interrupts it at the
time limit. Errors name the line and column at fault.
"""

from __future__ import annotations

import enum
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
import duckdb_kql

from clampdown.errors import InvalidInput
from clampdown.hunting.schema import EVENT_TABLES
from clampdown.hunting.store import EventStore
from clampdown.limits import MAX_QUERY

MAX_QUERY_LENGTH = MAX_QUERY
_SQL_START = re.compile(
    r"^\s*(select|with|from|values|insert|update|delete|copy|attach|detach|create|drop|alter|pragma|set|"
    r"reset|call|install|load|export|import|begin|commit|rollback|checkpoint|vacuum|use|describe|show|"
    r"summarize|explain|truncate|merge|prepare|execute|deallocate|\()\b",
    re.IGNORECASE,
)
_SCHEMA = {t.name: t.column_names for t in EVENT_TABLES}


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
    """Columns, JSON-safe rows, whether rows were cut at the limit, and the SQL that ran."""

    language: Language
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_seconds: float
    sql: str


def detect_language(query: str) -> Language:
    """SQL when the text starts like an SQL statement, else KQL (which starts with a table or `let`)."""
    return Language.SQL if _SQL_START.match(query) else Language.KQL


def translate_kql(query: str) -> str:
    """The DuckDB SQL for a KQL query; QueryError with the position on a mistake."""
    try:
        return str(duckdb_kql.to_sql(query, schema=_SCHEMA, allow_write=False))
    except duckdb_kql.KqlSyntaxError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        if first is None:
            raise QueryError(f"KQL syntax error: {exc}") from None
        raise QueryError(
            f"KQL syntax error: {first.message}", first.span.line, first.span.column + 1
        ) from None
    except duckdb_kql.KqlUnsupportedError as exc:
        span = exc.span
        raise QueryError(
            f"KQL construct not supported here: {exc.construct}" + (f" ({exc.hint})" if exc.hint else ""),
            span.line if span else None,
            span.column + 1 if span else None,
        ) from None
    except duckdb_kql.KqlError as exc:
        raise QueryError(f"KQL error: {exc}") from None
    except RecursionError:
        raise QueryError("the query is nested too deeply to translate") from None


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
) -> QueryResult:
    """Run one read-only query (blocking); at most `max_rows` rows, stopped after the time limit."""
    text = (query or "").strip()
    if not text:
        raise QueryError("the query is empty")
    if len(text) > MAX_QUERY_LENGTH or "\x00" in text:
        raise QueryError(f"the query must be at most {MAX_QUERY_LENGTH} characters with no NUL")
    lang = language or detect_language(text)
    sql = translate_kql(text) if lang is Language.KQL else text
    limit = min(max_rows or store.settings.max_rows, store.settings.max_rows)
    timeout = min(
        timeout_seconds or store.settings.query_timeout_seconds, store.settings.query_timeout_seconds
    )
    started = time.monotonic()
    with store.connect() as con:
        _checked_select(con, sql)
        timer = threading.Timer(timeout, con.interrupt)
        con.execute("BEGIN TRANSACTION READ ONLY")
        timer.start()
        try:
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            # KQL's dynamic values (make_set, pack ...) come back as JSON text: return them as JSON.
            json_columns = {i for i, d in enumerate(cursor.description or []) if str(d[1]) == "JSON"}
            fetched = cursor.fetchmany(limit + 1)
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
    rows = [
        [
            json.loads(v) if i in json_columns and isinstance(v, str) else _json_value(v)
            for i, v in enumerate(row)
        ]
        for row in fetched[:limit]
    ]
    return QueryResult(lang, columns, rows, len(fetched) > limit, time.monotonic() - started, sql)


def account_values(columns: list[str], rows: list[list[Any]], column: str) -> list[str]:
    """The distinct, non-empty values of one result column, in first-seen order."""
    if column not in columns:
        raise InvalidInput(f"no column {column!r} in the results; columns: {', '.join(columns)}")
    index = columns.index(column)
    values = (str(row[index]).strip() for row in rows if row[index] not in (None, ""))
    return list(dict.fromkeys(v for v in values if v))
