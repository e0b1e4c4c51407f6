"""Ingesting Windows events into the store in batches, each committed with its cursors."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from clampdown.hunting.directories import DirectoryMatcher
from clampdown.hunting.enrichment import IdentityIndex, RowJoiner, load_index, reenrich
from clampdown.hunting.store import Batch, EventStore, Row
from clampdown.hunting.windows import WindowsEvent, to_rows

log = logging.getLogger(__name__)
BATCH_SIZE = 5_000


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did: events read, rows added, events already stored or not kept; of the
    rows kept, how many name no directory (`ambiguous`: because several directories matched); and
    how many rows stored earlier without a directory were placed in one (`placed_earlier`); of the
    rows kept, how many name their account's UPN, the event's own or joined from IdentityInfo
    (`identified`)."""

    read: int
    added: int
    already_stored: int
    not_kept: int
    no_directory: int = 0
    ambiguous: int = 0
    directories: dict[str, int] = field(default_factory=dict)  # rows kept per directory
    placed_earlier: int = 0
    identified: int = 0


def ingest_windows(
    store: EventStore,
    events: Iterable[WindowsEvent],
    batch_size: int = BATCH_SIZE,
    *,
    directories: DirectoryMatcher | None = None,
) -> IngestReport:
    """Store the events not yet stored, each in the directory `directories` places it in (none
    without it); record ids at or below a computer's cursor are skipped, so a re-run or a later
    export of the same log adds only what is new. Events stored earlier without a directory (before
    directories were recorded, or configured) are placed too, where their DC's name tells. Each
    row is joined to IdentityInfo as it is stored (hunting/enrichment.py)."""
    matcher = directories or DirectoryMatcher()
    with store.held():
        index = load_index(store)
        report, example = _ingest(store, events, batch_size, matcher, index)
        if matcher.fixed is None and matcher.domains:
            report = replace(report, placed_earlier=_place_earlier(store, matcher))
            if report.placed_earlier and index.size:  # their accounts' domains are known now
                reenrich(store, index, matcher.account_directory)
    if example is not None:
        computer, candidates = example
        log.warning(
            "hunting ingest: %d events stored without a directory because several AD directories "
            "match their domain controller (e.g. %r: %s); name the directory with --directory, or "
            "tell the directories' domains apart in their settings",
            report.ambiguous, computer, ", ".join(candidates),
        )  # fmt: skip
    if report.no_directory > report.ambiguous:
        log.info(
            "hunting ingest: %d events from domain controllers of no configured AD directory stored "
            "without a directory (only users with access to every directory see them)",
            report.no_directory - report.ambiguous,
        )
    return report


def _place_earlier(store: EventStore, matcher: DirectoryMatcher) -> int:
    placed = {c: matcher.place_computer(c) for c in store.unplaced_computers()}
    named = {c: p.directory for c, p in placed.items() if p is not None and p.directory is not None}
    return store.place_computers(named) if named else 0


def _ingest(
    store: EventStore,
    events: Iterable[WindowsEvent],
    batch_size: int,
    matcher: DirectoryMatcher,
    index: IdentityIndex,
) -> tuple[IngestReport, tuple[str, tuple[str, ...]] | None]:
    done = {key: int(pos) for key, pos in store.cursors("windows:").items()}
    rows: dict[str, list[Row]] = {}
    positions: dict[str, str] = {}
    placed: Counter[str | None] = Counter()
    read = added = old = not_kept = ambiguous = pending = identified = 0
    join = RowJoiner(index, matcher.account_directory)
    example: tuple[str, tuple[str, ...]] | None = None  # the first ambiguous event's computer

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
            placement = matcher.place(event)
            row = mapped[1]
            row["Directory"] = placement.directory
            if index.size:
                row.update(join(mapped[0], row))
                identified += row.get("AccountUpn") is not None or row.get("TargetAccountUpn") is not None
            placed[placement.directory] += 1
            if placement.ambiguous:
                ambiguous += 1
                example = example or (event.computer, placement.candidates)
            rows.setdefault(mapped[0], []).append(row)
        pending += 1
        if pending >= batch_size:
            flush()
    flush()
    per_directory = {str(name): n for name, n in sorted(placed.items(), key=str) if name is not None}
    report = IngestReport(
        read=read, added=added, already_stored=old, not_kept=not_kept,
        no_directory=placed[None], ambiguous=ambiguous, directories=per_directory, identified=identified,
    )  # fmt: skip
    return report, example
