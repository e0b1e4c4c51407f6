"""Ingesting Windows events into the store in batches, each committed with its cursors."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from clampdown.hunting.store import Batch, EventStore, Row
from clampdown.hunting.windows import WindowsEvent, to_rows

BATCH_SIZE = 5_000


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: events read, rows added, events already stored or not kept."""

    read: int
    added: int
    already_stored: int
    not_kept: int


def ingest_windows(
    store: EventStore, events: Iterable[WindowsEvent], batch_size: int = BATCH_SIZE
) -> IngestReport:
    """Store the events not yet stored; record ids at or below a computer's cursor are skipped, so
    a re-run or a later export of the same log adds only what is new."""
    with store.held():
        return _ingest(store, events, batch_size)


def _ingest(store: EventStore, events: Iterable[WindowsEvent], batch_size: int) -> IngestReport:
    done = {key: int(pos) for key, pos in store.cursors("windows:").items()}
    rows: dict[str, list[Row]] = {}
    positions: dict[str, str] = {}
    read = added = old = not_kept = pending = 0

    def flush() -> None:
        nonlocal added, pending
        if positions:
            added += store.append(
                Batch(rows={k: list(v) for k, v in rows.items()}, positions=dict(positions))
            )
        rows.clear()
        positions.clear()
        pending = 0

    for event in events:
        read += 1
        key = event.cursor_key
        if event.record_id <= done.get(key, 0):
            old += 1
            continue
        done[key] = event.record_id
        positions[key] = str(event.record_id)
        mapped = to_rows(event)
        if mapped is None:
            not_kept += 1
        else:
            rows.setdefault(mapped[0], []).append(mapped[1])
        pending += 1
        if pending >= batch_size:
            flush()
    flush()
    return IngestReport(read=read, added=added, already_stored=old, not_kept=not_kept)
