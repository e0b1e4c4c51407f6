"""Saved queries, kept in the event store's bookkeeping schema beside the events they query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from clampdown.errors import Conflict, InvalidInput, NotFound
from clampdown.hunting.store import EventStore
from clampdown.limits import MAX_NAME


@dataclass(frozen=True)
class SavedQuery:
    id: int
    name: str
    query: str
    owner: str
    description: str
    created_at: datetime


def clean_name(name: str) -> str:
    """A name a person can type back: 1 to 200 characters, no control characters."""
    text = (name or "").strip()
    if not text or len(text) > MAX_NAME or any(ord(c) < 32 for c in text):
        raise InvalidInput(f"a name is 1 to {MAX_NAME} printable characters")
    return text


_COLUMNS = "id, name, query, owner, description, created_at"


def _saved(row: tuple[object, ...]) -> SavedQuery:
    id_, name, query, owner, description, created = row
    assert isinstance(created, datetime)
    return SavedQuery(int(str(id_)), str(name), str(query), str(owner), str(description or ""), created)


def save_query(store: EventStore, name: str, query: str, owner: str, description: str = "") -> SavedQuery:
    """Store a new saved query; Conflict if the name is taken."""
    with store.connect() as con:
        try:
            row = con.execute(
                "INSERT INTO clampdown_meta.saved_queries"
                f" VALUES (nextval('clampdown_meta.ids'), ?, ?, ?, ?, ?) RETURNING {_COLUMNS}",
                [clean_name(name), query, owner, description, datetime.now(UTC)],
            ).fetchone()
        except duckdb.ConstraintException:
            raise Conflict(f"a saved query named {name!r} exists already") from None
    assert row is not None
    return _saved(row)


def list_saved_queries(store: EventStore) -> list[SavedQuery]:
    with store.connect() as con:
        rows = con.execute(f"SELECT {_COLUMNS} FROM clampdown_meta.saved_queries ORDER BY name").fetchall()
    return [_saved(r) for r in rows]


def get_saved_query(store: EventStore, ref: str | int) -> SavedQuery:
    """A saved query by id or name; NotFound otherwise."""
    with store.connect() as con:
        rows = con.execute(
            f"SELECT {_COLUMNS} FROM clampdown_meta.saved_queries WHERE name = ? OR CAST(id AS VARCHAR) = ?",
            [str(ref), str(ref)],
        ).fetchall()
    if not rows:
        raise NotFound(f"no saved query {ref!r}")
    return _saved(rows[0])


def delete_saved_query(store: EventStore, ref: str | int) -> None:
    found = get_saved_query(store, ref)
    with store.connect() as con:
        con.execute("DELETE FROM clampdown_meta.saved_queries WHERE id = ?", [found.id])
