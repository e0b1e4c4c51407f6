"""The event store: one DuckDB file, opened per unit of work so a CLI ingest can share it with a server.

Every connection is opened with the filesystem closed (`enable_external_access=false`) and the
configuration locked, so no query can read a file, attach a database or lift a limit. Rows and
the cursor of the source they came from are written in one transaction.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

from clampdown.errors import StoreUnavailable
from clampdown.hunting.schema import (
    EVENT_TABLES,
    IDENTITY_DIRECTORY_EVENTS,
    IDENTITY_INFO,
    IDENTITY_LOGON_EVENTS,
    META_DDL,
    TABLES_BY_NAME,
    WINDOWS_SOURCES,
)
from clampdown.hunting.settings import HuntingSettings

LOCK_WAIT_SECONDS = 20.0
_OPEN_LOCK = threading.Lock()

Row = dict[str, Any]

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "BOOLEAN": pa.bool_(),
    "DOUBLE": pa.float64(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class Batch:
    """Rows for some tables, and where each source stands once they are stored."""

    rows: Mapping[str, Sequence[Row]]
    positions: Mapping[str, str]


def _connection_config(settings: HuntingSettings) -> dict[str, Any]:
    return {
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "memory_limit": settings.memory_limit,
        "threads": settings.threads,
    }


def _arrow(table_name: str, rows: Sequence[Row]) -> pa.Table:
    table = TABLES_BY_NAME[table_name]
    arrays = {}
    for column in table.columns:
        values = [row.get(column.name) for row in rows]
        if column.name == "AdditionalFields":
            values = [v if v is None or isinstance(v, str) else json.dumps(v, default=str) for v in values]
        arrays[column.name] = pa.array(values, type=_ARROW_TYPES[column.type])
    return pa.table(arrays)


_UNPLACED = (
    'SELECT {select} FROM "IdentityLogonEvents" WHERE "Directory" IS NULL AND "Source" IN (?, ?)'
    ' UNION SELECT {select} FROM "IdentityDirectoryEvents" WHERE "Directory" IS NULL AND "Source" IN (?, ?)'
)


def _add_missing_columns(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a file made by an older version up to the schema: each column it lacks is added
    (at the end, where the schema puts new columns) and filled in its rows, in one transaction."""
    found = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns()"
        " WHERE database_name = current_database() AND schema_name = 'main'"
    ).fetchall()
    existing = {(str(t), str(c)) for t, c in found}
    missing = [(t, c) for t in EVENT_TABLES for c in t.columns if (t.name, c.name) not in existing]
    if not missing:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        for table, column in missing:
            con.execute(f'ALTER TABLE "{table.name}" ADD COLUMN IF NOT EXISTS "{column.name}" {column.type}')
            if column.backfill is not None:
                con.execute(f'UPDATE "{table.name}" SET "{column.name}" = {column.backfill}')
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


class EventStore:
    """The DuckDB event file; thread-safe, one writer at a time within a process."""

    def __init__(self, path: Path, settings: HuntingSettings) -> None:
        self.path = path
        self.settings = settings
        self._write_lock = threading.Lock()
        self._initialized = False

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the file, waiting while another process holds it."""
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                con = self._open()
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise StoreUnavailable(f"cannot open the event store {self.path}: {exc}") from None
                time.sleep(0.1)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the file open for a run of work: each connect() inside joins the open instance
        instead of opening and replaying the file again."""
        with self.connect():
            yield

    def _open(self) -> duckdb.DuckDBPyConnection:
        # Serialized: two threads joining a fresh instance must not both try to configure it.
        with _OPEN_LOCK:
            con = duckdb.connect(str(self.path), config=_connection_config(self.settings))
            try:
                # Locked after the time zone is set (an extension setting, unknown at connect
                # time); connections that join an open instance find it locked already.
                locked = con.execute("SELECT current_setting('lock_configuration')").fetchone()
                if not (locked and locked[0]):
                    con.execute("SET TimeZone = 'UTC'")
                    con.execute("SET lock_configuration = true")
                if not self._initialized:
                    self._create_tables(con)
            except BaseException:
                con.close()
                raise
            return con

    def _create_tables(self, con: duckdb.DuckDBPyConnection) -> None:
        for table in EVENT_TABLES:
            con.execute(table.ddl())
        _add_missing_columns(con)
        for statement in META_DDL:
            con.execute(statement)
        self._initialized = True

    def initialize(self) -> None:
        """Create the file and its tables if they do not exist."""
        with self.connect():
            pass

    def cursor(self, source: str) -> str | None:
        """Where `source` stopped: the position stored with its last batch."""
        with self.connect() as con:
            found = con.execute(
                "SELECT position FROM clampdown_meta.cursors WHERE source = ?", [source]
            ).fetchone()
        return None if found is None else found[0]

    def cursors(self, prefix: str = "") -> dict[str, str]:
        """Every source whose name starts with `prefix`, and its position."""
        with self.connect() as con:
            found = con.execute(
                "SELECT source, position FROM clampdown_meta.cursors WHERE starts_with(source, ?)", [prefix]
            ).fetchall()
        return {str(s): str(p) for s, p in found}

    def append(self, batch: Batch) -> int:
        """Store a batch and move its sources' cursors in one transaction; rows whose ReportId is
        already stored are skipped, so a page read twice adds nothing. Returns rows added."""
        added = 0
        with self._write_lock, self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table_name, rows in batch.rows.items():
                    if rows:
                        added += self._insert_new(con, table_name, rows)
                for source, position in batch.positions.items():
                    con.execute(
                        "INSERT INTO clampdown_meta.cursors VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE"
                        " SET position = excluded.position, updated_at = excluded.updated_at",
                        [source, position, datetime.now(UTC)],
                    )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return added

    def _insert_new(self, con: duckdb.DuckDBPyConnection, table_name: str, rows: Sequence[Row]) -> int:
        incoming = _arrow(table_name, rows)
        con.register("incoming", incoming)
        try:
            if table_name == IDENTITY_INFO.name:
                # One row per account per directory: the newest replaces the old, and the row
                # written before directories were recorded (Directory NULL).
                con.execute(
                    'DELETE FROM "IdentityInfo" USING incoming'
                    ' WHERE "IdentityInfo"."Provider" = incoming."Provider"'
                    ' AND "IdentityInfo"."AccountObjectId" = incoming."AccountObjectId"'
                    ' AND ("IdentityInfo"."Directory" IS NOT DISTINCT FROM incoming."Directory"'
                    ' OR "IdentityInfo"."Directory" IS NULL)'
                )
                con.execute(
                    'INSERT INTO "IdentityInfo" BY NAME'
                    ' SELECT DISTINCT ON ("Provider", "Directory", "AccountObjectId") *'
                    ' FROM incoming ORDER BY "Timestamp" DESC'
                )
                return len(rows)
            # The Timestamp bound keeps the duplicate check to the recent part of the table.
            found = con.execute(
                f'INSERT INTO "{table_name}" BY NAME SELECT DISTINCT ON ("ReportId") * FROM incoming i'
                f' WHERE NOT EXISTS (SELECT 1 FROM "{table_name}" t WHERE t."ReportId" = i."ReportId"'
                f' AND t."Timestamp" >= (SELECT min("Timestamp") FROM incoming))'
            ).fetchone()
            return int(found[0]) if found else 0
        finally:
            con.unregister("incoming")

    def unplaced_computers(self) -> list[str]:
        """The domain controllers (DestinationDeviceName) of Windows events stored without a directory."""
        with self.connect() as con:
            found = con.execute(_UNPLACED.format(select='"DestinationDeviceName"'), [*WINDOWS_SOURCES] * 2)
            return sorted(str(name) for (name,) in found.fetchall() if name)

    def place_computers(self, directories: Mapping[str, str]) -> int:
        """Give the Windows events stored without a directory the directory of their domain
        controller (DestinationDeviceName -> directory); returns rows changed."""
        changed = 0
        with self._write_lock, self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table in (IDENTITY_LOGON_EVENTS, IDENTITY_DIRECTORY_EVENTS):
                    for computer, directory in directories.items():
                        found = con.execute(
                            f'UPDATE "{table.name}" SET "Directory" = ? WHERE "Directory" IS NULL'
                            ' AND "Source" IN (?, ?) AND "DestinationDeviceName" = ?',
                            [directory, *WINDOWS_SOURCES, computer],
                        ).fetchone()
                        changed += int(found[0]) if found else 0
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return changed

    def distinct(
        self, table_name: str, expressions: Sequence[str], where: str | None = None
    ) -> list[tuple[Any, ...]]:
        """The distinct values of some SQL expressions over one event table's rows, those `where`
        selects (trusted SQL: the callers' own expressions, never a user's text)."""
        table = TABLES_BY_NAME[table_name]
        condition = f" WHERE {where}" if where else ""
        with self.connect() as con:
            found = con.execute(f'SELECT DISTINCT {", ".join(expressions)} FROM "{table.name}"{condition}')
            return [tuple(row) for row in found.fetchall()]

    def update_matching(
        self,
        table_name: str,
        expressions: Sequence[str],
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
    ) -> int:
        """Set `columns` in the rows of one table whose `expressions` are the first values of a row
        of `rows` (compared as text, NULL equal to NULL) to that row's last values, in one
        transaction; returns rows changed."""
        table = TABLES_BY_NAME[table_name]
        keys = [f"k{i}" for i in range(len(expressions))]
        values = [f"v{i}" for i in range(len(columns))]
        arrays = {
            name: pa.array([None if r[i] is None else str(r[i]) for r in rows], type=pa.string())
            for i, name in enumerate([*keys, *values])
        }
        match = " AND ".join(
            f"CAST({e} AS VARCHAR) IS NOT DISTINCT FROM u.{k}" for e, k in zip(expressions, keys, strict=True)
        )
        sets = ", ".join(f'"{c}" = u.{v}' for c, v in zip(columns, values, strict=True))
        with self._write_lock, self.connect() as con:
            con.register("updates", pa.table(arrays))
            con.execute("BEGIN TRANSACTION")
            try:
                update = f'UPDATE "{table.name}" SET {sets} FROM updates u WHERE {match}'
                found = con.execute(update).fetchone()
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("updates")
        return int(found[0]) if found else 0

    def count(self, table_name: str) -> int:
        """Rows in one event table."""
        if table_name not in TABLES_BY_NAME:
            raise KeyError(table_name)
        with self.connect() as con:
            found = con.execute(f'SELECT count(*) FROM "{table_name}"').fetchone()
        return int(found[0]) if found else 0
