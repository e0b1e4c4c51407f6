"""A small EVTX writer for tests, from the format's public description (libyal's EVTX notes, MS-EVEN6).

It writes what Windows writes, less templates: a file header, 64 KiB chunks with their headers and
CRC32 checksums, and one event record per event whose binary XML spells out every element, with
element and attribute names defined inline. No template table is needed, so any EVTX reader that
follows the format reads the files; the records carry the same System and EventData layout as a
domain controller's Security log.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

FILE_HEADER_SIZE = 4096
CHUNK_SIZE = 65536
CHUNK_HEADER_SIZE = 512
RECORD_HEADER_SIZE = 24
SECURITY_PROVIDER = ("Microsoft-Windows-Security-Auditing", "{54849625-5478-4994-A5BA-3E3B0328C30D}")
_EPOCH_DIFF = 11_644_473_600  # seconds from 1601-01-01 to 1970-01-01


@dataclass(frozen=True)
class SecurityEvent:
    """One Security log event as a domain controller records it."""

    event_id: int
    time: datetime
    record_id: int
    data: Sequence[tuple[str, str]]
    computer: str = "DC1.lab.example.test"
    channel: str = "Security"


@dataclass
class _Element:
    name: str
    attributes: list[tuple[str, str]] = field(default_factory=list)
    children: list[_Element] = field(default_factory=list)
    text: str | None = None


def filetime(moment: datetime) -> int:
    return int((moment.timestamp() + _EPOCH_DIFF) * 10_000_000)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


class _BinXml:
    """Binary XML for one record; names are defined inline at their chunk offset."""

    def __init__(self, base: int) -> None:
        self.base = base  # the chunk offset where this buffer starts
        self.out = bytearray()

    def name(self, text: str) -> None:
        # The offset points just past itself: "the name follows here".
        here = self.base + len(self.out) + 4
        self.out += struct.pack("<I", here)
        self.out += struct.pack("<IHH", 0, _name_hash(text), len(text)) + _utf16(text) + b"\x00\x00"

    def value(self, text: str) -> None:
        self.out += b"\x05\x01" + struct.pack("<H", len(text)) + _utf16(text)

    def element(self, el: _Element) -> None:
        # No dependency id: outside a template definition a start element has none.
        self.out += bytes([0x41 if el.attributes else 0x01])
        size_at = len(self.out)
        self.out += b"\x00\x00\x00\x00"
        self.name(el.name)
        if el.attributes:
            list_at = len(self.out)
            self.out += b"\x00\x00\x00\x00"
            for i, (key, val) in enumerate(el.attributes):
                self.out += bytes([0x46 if i < len(el.attributes) - 1 else 0x06])
                self.name(key)
                self.value(val)
            struct.pack_into("<I", self.out, list_at, len(self.out) - list_at - 4)
        if el.children or el.text is not None:
            self.out += b"\x02"
            if el.text is not None:
                self.value(el.text)
            for child in el.children:
                self.element(child)
            self.out += b"\x04"
        else:
            self.out += b"\x03"
        struct.pack_into("<I", self.out, size_at, len(self.out) - size_at - 4)


def _name_hash(text: str) -> int:
    value = 0
    for unit in struct.unpack(f"<{len(text)}H", _utf16(text)):
        value = (value * 65599 + unit) & 0xFFFFFFFF
    return value & 0xFFFF


def _event_xml(event: SecurityEvent) -> _Element:
    stamp = event.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")  # 7 digits, as Windows writes
    system = _Element(
        "System",
        children=[
            _Element("Provider", [("Name", SECURITY_PROVIDER[0]), ("Guid", SECURITY_PROVIDER[1])]),
            _Element("EventID", text=str(event.event_id)),
            _Element("Version", text="0"),
            _Element("Level", text="0"),
            _Element("Task", text="12544"),
            _Element("Opcode", text="0"),
            _Element(
                "Keywords", text="0x8020000000000000" if event.event_id != 4625 else "0x8010000000000000"
            ),
            _Element("TimeCreated", [("SystemTime", stamp)]),
            _Element("EventRecordID", text=str(event.record_id)),
            _Element("Correlation"),
            _Element("Execution", [("ProcessID", "636"), ("ThreadID", "4120")]),
            _Element("Channel", text=event.channel),
            _Element("Computer", text=event.computer),
            _Element("Security"),
        ],
    )
    data = _Element("EventData", children=[_Element("Data", [("Name", k)], text=v) for k, v in event.data])
    return _Element(
        "Event", [("xmlns", "http://schemas.microsoft.com/win/2004/08/events/event")], [system, data]
    )


def _record(event: SecurityEvent, chunk_offset: int) -> bytes:
    xml = _BinXml(chunk_offset + RECORD_HEADER_SIZE)
    xml.out += b"\x0f\x01\x01\x00"  # fragment header, version 1.1
    xml.element(_event_xml(event))
    xml.out += b"\x00"  # end of stream
    body = bytes(xml.out)
    size = RECORD_HEADER_SIZE + len(body) + 4
    head = b"\x2a\x2a\x00\x00" + struct.pack("<IQQ", size, event.record_id, filetime(event.time))
    return head + body + struct.pack("<I", size)


def _chunk(records: list[tuple[SecurityEvent, bytes]], first_number: int) -> bytes:
    data = b"".join(r for _, r in records)
    last_offset = CHUNK_HEADER_SIZE + len(data) - len(records[-1][1])
    header = bytearray(CHUNK_HEADER_SIZE)
    struct.pack_into(
        "<8sQQQQIII",
        header,
        0,
        b"ElfChnk\x00",
        first_number,
        first_number + len(records) - 1,
        records[0][0].record_id,
        records[-1][0].record_id,
        128,
        last_offset,
        CHUNK_HEADER_SIZE + len(data),
    )
    struct.pack_into("<I", header, 52, zlib.crc32(data))
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120]) + bytes(header[128:512])))
    return bytes(header) + data + bytes(CHUNK_SIZE - CHUNK_HEADER_SIZE - len(data))


def write_evtx(path: Path, events: Iterable[SecurityEvent]) -> Path:
    """Write the events, in order, as an EVTX file; returns the path."""
    chunks: list[bytes] = []
    pending: list[tuple[SecurityEvent, bytes]] = []
    used = CHUNK_HEADER_SIZE
    number = 1
    last_id = 0
    for event in events:
        record = _record(event, used)
        if used + len(record) > CHUNK_SIZE:
            chunks.append(_chunk(pending, number))
            number += len(pending)
            pending, used = [], CHUNK_HEADER_SIZE
            record = _record(event, used)
        pending.append((event, record))
        used += len(record)
        last_id = event.record_id
    if pending:
        chunks.append(_chunk(pending, number))
    header = bytearray(FILE_HEADER_SIZE)
    struct.pack_into(
        "<8sQQQIHHHH",
        header,
        0,
        b"ElfFile\x00",
        0,
        len(chunks) - 1,
        last_id + 1,
        128,
        1,
        3,
        FILE_HEADER_SIZE,
        len(chunks),
    )
    struct.pack_into("<I", header, 124, zlib.crc32(bytes(header[:120])))
    path.write_bytes(bytes(header) + b"".join(chunks))
    return path
