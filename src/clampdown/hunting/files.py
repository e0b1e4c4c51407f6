"""Reading Windows Security events from files: EVTX (the Rust `evtx` parser) and Winlogbeat JSON lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import evtx

from clampdown.errors import InvalidInput
from clampdown.hunting.windows import WindowsEvent, parse_time


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("#text", ""))
    return "" if value is None else str(value)


def _event_data(section: Any) -> dict[str, str]:
    """EventData as name -> value; the parser flattens `<Data Name=...>` into keys."""
    if not isinstance(section, dict):
        return {}
    data = section.get("Data", section)
    if isinstance(data, list):  # unnamed <Data> elements: nothing to key them by
        return {}
    return (
        {k: v if isinstance(v, str) else _text(v) for k, v in data.items() if not k.startswith("#")}
        if isinstance(data, dict)
        else {}
    )


def read_evtx(source: Path | IO[bytes], threads: int = 1) -> Iterator[WindowsEvent]:
    """Every record of an EVTX file, in file order."""
    try:
        parser = evtx.PyEvtxParser(
            source if not isinstance(source, Path) else str(source), number_of_threads=threads
        )
    except (OSError, RuntimeError) as exc:
        raise InvalidInput(f"not a readable EVTX file: {exc}") from None
    for record in parser.records_json():
        assert record is not None
        event = json.loads(record["data"]).get("Event", {})
        system = event.get("System", {})
        event_id = system.get("EventID")
        time = (system.get("TimeCreated") or {}).get("#attributes", {}).get("SystemTime") or record[
            "timestamp"
        ]
        yield WindowsEvent(
            event_id=int(_text(event_id)),
            time=parse_time(str(time)),
            computer=_text(system.get("Computer")),
            channel=_text(system.get("Channel")) or "Security",
            record_id=int(system.get("EventRecordID") or record["event_record_id"]),
            data=_event_data(event.get("EventData")),
            source="evtx",
        )


def parse_winlogbeat(line: str, number: int) -> WindowsEvent:
    """One Winlogbeat document; InvalidInput naming the line when it is not one."""
    try:
        doc = json.loads(line)
        winlog = doc["winlog"]
        return WindowsEvent(
            event_id=int(winlog.get("event_id") or doc.get("event", {})["code"]),
            time=parse_time(str(doc["@timestamp"])),
            computer=str(winlog["computer_name"]),
            channel=str(winlog.get("channel") or "Security"),
            record_id=int(winlog["record_id"]),
            data={str(k): "" if v is None else str(v) for k, v in (winlog.get("event_data") or {}).items()},
            source="winlogbeat",
        )
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"line {number}: not JSON: {exc.msg} at column {exc.colno}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"line {number}: not a Winlogbeat Windows event (missing or bad {exc})") from None


def read_jsonl(path: Path) -> Iterator[WindowsEvent]:
    """Every event of a Winlogbeat JSON lines file; blank lines are skipped."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield parse_winlogbeat(line, number)
