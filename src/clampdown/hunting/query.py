"""Read-only hunting queries in KQL (translated by duckdb-kql) or DuckDB SQL, under time and row limits.

Four walls keep a query from changing anything or reaching outside the store: exactly one
statement, and it must be a SELECT; it runs in a READ ONLY transaction that is rolled back; the
connection has no filesystem access and a locked configuration; a timer interrupts it at the
time limit. Errors name the line and column at fault.

A query limited to some directories (a scoped user's) sees only their rows: each event table's
name resolves, on that connection only, to a temporary view of the rows whose Directory is one of
them (a temporary object comes first in DuckDB's search path); a row of no known directory
(Directory NULL) is in none of them. Two more walls keep it to those
views: its syntax tree may name no table but an event table or a CTE of its own, unqualified, and
no table function but a generator (range, unnest); and its plan, once bound, may scan nothing else
(a built-in macro such as pg_get_viewdef reads the catalog without naming a table).
"""

from __future__ import annotations

import enum
import functools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb

from clampdown.errors import InvalidInput
from clampdown.hunting.charts import Chart, RenderError, RenderSpec, resolve_chart
from clampdown.hunting.kql_tokens import locate_name
from clampdown.hunting.kql_worker import KqlTranslator, TranslationFailed, TranslationTimedOut
from clampdown.hunting.schema import EVENT_TABLES
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
    column_types: list[str] = field(default_factory=list)  # DuckDB's type of each column
    chart: Chart | None = None  # what a KQL `render` asked to draw


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
def _translated(query: str, timeout: float) -> tuple[str, RenderSpec | None]:
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
    return answer.sql, answer.render


def translate_kql_with_render(
    query: str, timeout: float = KQL_TRANSLATION_SECONDS
) -> tuple[str, RenderSpec | None]:
    """The DuckDB SQL for a KQL query and its render clause, translated in a child process stopped
    after `timeout` seconds; QueryError with the position on a mistake, before any parsing if it
    is nested too deeply."""
    depth = nesting_depth(query)
    if depth > MAX_QUERY_NESTING:
        raise QueryError(f"query: brackets nested {depth} deep; at most {MAX_QUERY_NESTING} are allowed")
    return _translated(query, min(timeout, KQL_TRANSLATION_SECONDS))


def translate_kql(query: str, timeout: float = KQL_TRANSLATION_SECONDS) -> str:
    """The DuckDB SQL for a KQL query (see translate_kql_with_render)."""
    return translate_kql_with_render(query, timeout)[0]


# DuckDB names what it could not find; in a KQL query, that name is where the mistake is.
_NAMED_IN_ERROR = re.compile(r'(?:column|with name) "?([^"\s!(]+)|"([^"]+)"')


def _kql_position(query: str, message: str) -> tuple[int | None, int | None]:
    """Where in the KQL text the name a DuckDB error quotes is (the SQL's own position means
    nothing to the person who wrote KQL)."""
    named = _NAMED_IN_ERROR.search(message)
    if named:
        found = locate_name(query, next(g for g in named.groups() if g))
        if found:
            return found
    return None, None


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


# --- Queries limited to some directories -------------------------------------------------------

_EVENT_NAMES = {t.name.lower(): t.name for t in EVENT_TABLES}
# Table functions that only generate values: they read nothing of the store.
_GENERATORS = frozenset({"range", "generate_series", "unnest"})
_ALLOWED_REFS = frozenset(
    {"BASE_TABLE", "TABLE_FUNCTION", "SUBQUERY", "JOIN", "EMPTY", "EXPRESSION_LIST", "PIVOT"}
)
# Plan leaves that read no table: constants, VALUES, CTE and correlated-subquery scans, generators.
_PLAN_LEAVES = frozenset(
    {"DUMMY_SCAN", "COLUMN_DATA_SCAN", "CHUNK_SCAN", "EXPRESSION_SCAN", "EMPTY_RESULT", "CTE_SCAN",
     "REC_CTE_SCAN", "REC_KEY_CTE_SCAN", "DELIM_SCAN"}
)  # fmt: skip
_EXPLAIN = "EXPLAIN (FORMAT JSON)\n"  # on a line of its own, so an error's column stays the query's


def _scope_text(sources: frozenset[str]) -> str:
    return "directories " + ", ".join(sorted(sources)) if sources else "no directory"


def _refused(
    sources: frozenset[str], what: str, sql: str | None = None, offset: int | None = None
) -> QueryError:
    tables = ", ".join(t.name for t in EVENT_TABLES)
    line = column = None
    if sql is not None and offset is not None and 0 <= offset < len(sql.encode()):
        before = sql.encode()[:offset].decode(errors="ignore")
        line, column = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
    message = f"a query limited to {_scope_text(sources)} may read the event tables ({tables}) only: {what}"
    return QueryError(message, line, column)


def _quoted_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quoted_text(text: str) -> str:
    # DuckDB's string literals take no backslash escapes: doubling the quote is the whole of it.
    if "\x00" in text:
        raise QueryError(f"the directory name {text!r} holds a NUL")
    return "'" + text.replace("'", "''") + "'"


def _check_scoped_tree(
    con: duckdb.DuckDBPyConnection, sql: str, sources: frozenset[str], lang: Language
) -> None:
    """QueryError unless every table the query names is an event table or one of its own CTEs
    (visible where it is named), unqualified, and every table function a generator."""
    found = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    try:
        tree = json.loads(found[0]) if found else {"error": True}
    except RecursionError:
        raise QueryError("the query is nested too deeply to be checked") from None
    if tree.get("error"):
        raise _refused(sources, f"the query cannot be checked ({tree.get('error_message', 'unknown')})")
    text = sql if lang is Language.SQL else None
    stack: list[tuple[Any, frozenset[str]]] = [(tree.get("statements"), frozenset())]
    while stack:
        node, visible = stack.pop()
        if isinstance(node, list):
            stack.extend((item, visible) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("type"), str) and "class" not in node and "alias" in node and "sample" in node:
            _check_table_ref(node, visible, sources, text)
        ctes = node.get("cte_map")
        if isinstance(ctes, dict):
            # A CTE sees the CTEs before it, and itself only when it recurses; the body sees all.
            for entry in ctes.get("map") or []:
                name = str(entry.get("key", "")).lower()
                body = entry.get("value")
                recursive = isinstance(body, dict) and (body.get("query_node") or {}).get("type") == (
                    "RECURSIVE_CTE_NODE"
                )
                stack.append((body, visible | {name} if recursive else visible))
                visible = visible | {name}
        stack.extend((value, visible) for key, value in node.items() if key != "cte_map")


def _check_table_ref(
    ref: dict[str, Any], visible: frozenset[str], sources: frozenset[str], sql: str | None
) -> None:
    kind, offset = ref["type"], ref.get("query_location")
    if kind not in _ALLOWED_REFS:
        shown = "DESCRIBE, SHOW or SUMMARIZE" if kind == "SHOW_REF" else kind.lower().replace("_", " ")
        raise _refused(sources, f"{shown} is not allowed", sql, offset)
    if kind == "TABLE_FUNCTION":
        name = str((ref.get("function") or {}).get("function_name", "")).lower()
        if name not in _GENERATORS:
            raise _refused(sources, f"the table function {name}() is not allowed", sql, offset)
    elif kind == "BASE_TABLE":
        path = [str(p) for p in (ref.get("qualified_name") or {}).get("path") or []] or [
            str(ref.get(k)) for k in ("catalog_name", "schema_name", "table_name") if ref.get(k)
        ]
        dotted = ".".join(path)
        if len(path) != 1 or ref.get("catalog_name") or ref.get("schema_name"):
            hint = "; name it without a schema" if path[-1].lower() in _EVENT_NAMES else ""
            raise _refused(sources, f"{dotted!r} is not one{hint}", sql, offset)
        if path[0].lower() not in visible | _EVENT_NAMES.keys():
            raise _refused(sources, f"{dotted!r} is not one", sql, offset)


def _create_scoped_views(con: duckdb.DuckDBPyConnection, sources: frozenset[str]) -> str:
    """Each event table's name, on this connection only, names the rows whose Directory is one of
    `sources` alone. Returns the store's catalog name."""
    found = con.execute("SELECT current_database()").fetchone()
    assert found is not None
    catalog = str(found[0])
    keep = " OR ".join(f'"Directory" = {_quoted_text(s)}' for s in sorted(sources))
    for table in EVENT_TABLES:
        where = f"({keep})" if keep and "Directory" in table.column_names else "false"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {_quoted_name(table.name)} AS"
            f" SELECT * FROM {_quoted_name(catalog)}.main.{_quoted_name(table.name)} WHERE {where}"
        )
    return catalog


def _check_scoped_plan(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    sources: frozenset[str],
    lang: Language,
    catalog: str,
    text: str,
) -> None:
    """QueryError unless the bound plan scans the event tables (through the views) and generators
    only: what a macro or a system view reads shows here, whatever the query text looks like."""
    try:
        found = con.execute(_EXPLAIN + sql).fetchall()
    except duckdb.InterruptException:
        raise
    except duckdb.Error as exc:
        if lang is Language.SQL:
            line, column = _position(sql, str(exc))
            line = None if line is None else line - 1
        else:
            line, column = _kql_position(text, str(exc))
        raise QueryError(_first_line(exc), line, column) from None
    # The plan quotes a catalog name that needs it (a keyword, a hyphen: events_path = "old.duckdb").
    tables = {f"{c}.main.{t.name}" for t in EVENT_TABLES for c in (catalog, _quoted_name(catalog))}
    try:
        stack: list[Any] = [json.loads(plan) for _, plan in found]
    except RecursionError:
        raise QueryError("the query is nested too deeply to be checked") from None
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        info = node.get("extra_info") or {}
        table, function = info.get("Table"), info.get("Function")
        name = str(node.get("name", "")).strip()
        if table is not None:
            if table not in tables:
                raise _refused(sources, f"it reads {table!r}")
        elif function is not None:
            if str(function).lower() not in _GENERATORS:
                raise _refused(sources, f"it reads {str(function).lower()}()")
        elif not node.get("children") and name not in _PLAN_LEAVES:
            raise _refused(sources, f"its plan reads {name!r}, which cannot be checked")
        stack.extend(node.get("children") or [])


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


@dataclass(frozen=True)
class QueryCheck:
    """Whether a query can run as written, and if not, why and where (1-based line and column)."""

    language: Language | None
    valid: bool
    message: str | None = None
    line: int | None = None
    column: int | None = None


def _query_text(query: str | None) -> str:
    """The query without its surrounding blanks; QueryError if it is empty, too long or holds a NUL."""
    text = (query or "").strip()
    if not text:
        raise QueryError("the query is empty")
    if len(text) > MAX_QUERY_LENGTH or "\x00" in text:
        raise QueryError(f"the query must be at most {MAX_QUERY_LENGTH} characters with no NUL")
    return text


def check_query(query: str, language: Language | None = None, timeout_seconds: float = 2.0) -> Language:
    """QueryError (with the line and column) if the query cannot run as written: a KQL query's
    translation and render clause, an SQL query's syntax and statement kind. Reads no events
    (names unknown to the tables show only when the query runs). Returns the language."""
    text = _query_text(query)
    lang = language or detect_language(text)
    if lang is Language.KQL:
        translate_kql_with_render(text, timeout_seconds)
    else:
        with duckdb.connect(":memory:", config={"enable_external_access": False}) as con:
            _checked_select(con, text)
    return lang


def run_query(
    store: EventStore,
    query: str,
    language: Language | None = None,
    *,
    max_rows: int | None = None,
    timeout_seconds: float | None = None,
    max_bytes: int = MAX_RESULT_BYTES,
    sources: frozenset[str] | None = None,
) -> QueryResult:
    """Run one read-only query (blocking); at most `max_rows` rows and `max_bytes` of them as JSON,
    stopped after the time limit (which the KQL translation counts against). With `sources` (the
    names of directories), the query sees only the event rows whose Directory is one of them, and
    nothing else of the store."""
    text = _query_text(query)
    lang = language or detect_language(text)
    timeout = min(
        timeout_seconds or store.settings.query_timeout_seconds, store.settings.query_timeout_seconds
    )
    started = time.monotonic()
    sql, render = translate_kql_with_render(text, timeout) if lang is Language.KQL else (text, None)
    limit = min(max_rows or store.settings.max_rows, store.settings.max_rows)
    left = max(0.1, timeout - (time.monotonic() - started))
    with store.connect() as con:
        _checked_select(con, sql)
        if sources is not None:
            try:
                _check_scoped_tree(con, sql, sources, lang)
            except QueryError as exc:
                if lang is Language.SQL or exc.line is not None:
                    raise
                # The tree is the translation's: point at the name it refused in the KQL text.
                named = re.search(r"'([^']+)' is not one", exc.message)
                where = locate_name(text, named.group(1).split(".")[-1]) if named else None
                raise QueryError(exc.message, *(where or (None, None))) from None
            catalog = _create_scoped_views(con, sources)
        timer = threading.Timer(left, con.interrupt)
        con.execute("BEGIN TRANSACTION READ ONLY")
        timer.start()
        try:
            if sources is not None:
                _check_scoped_plan(con, sql, sources, lang, catalog, text)
            cursor = con.execute(sql)
            columns = [d[0] for d in cursor.description or []]
            types = [str(d[1]) for d in cursor.description or []]
            # KQL's dynamic values (make_set, pack ...) come back as JSON text: return them as JSON.
            json_columns = {i for i, d in enumerate(cursor.description or []) if str(d[1]) == "JSON"}
            rows, truncated_by = _fetch(cursor, json_columns, limit, max_bytes)
        except duckdb.InterruptException:
            raise QueryTimeout(f"the query ran longer than {timeout:g} seconds and was stopped") from None
        except duckdb.Error as exc:
            if time.monotonic() - started >= timeout:
                raise QueryTimeout(f"the query ran longer than {timeout:g} seconds and was stopped") from None
            if lang is Language.SQL:
                line, column = _position(sql, str(exc))
            else:
                line, column = _kql_position(text, str(exc))
            raise QueryError(_first_line(exc), line, column) from None
        finally:
            timer.cancel()
            con.execute("ROLLBACK")
    try:
        chart = resolve_chart(render, columns, types) if render is not None else None
    except RenderError as exc:
        raise QueryError(f"KQL render: {exc.message}", exc.line, exc.column) from None
    elapsed = time.monotonic() - started
    return QueryResult(
        lang, columns, rows, truncated_by is not None, elapsed, sql, truncated_by, types, chart
    )


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
