"""A checkpoint of the audit chain: its head (sequence number, hash, how many entries) at a time,
signed with HMAC-SHA256 under a key that lives outside the database.

Whoever can write the database can rewrite the chain consistently or cut its newest entries, but
cannot sign a checkpoint: the latest one then no longer matches what the chain holds.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_CONTEXT = "clampdown-audit-checkpoint-v1"  # a signature made for one purpose is not valid for another


def checkpoint_signature(key: bytes, seq: int, head: str, entries: int, at: datetime) -> str:
    """HMAC-SHA256 (hex) of a checkpoint's fields under `key`."""
    message = f"{_CONTEXT}\n{seq}\n{head}\n{entries}\n{at.astimezone(UTC).isoformat()}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    """The head of the chain as it was at `at`, with the signature that vouches for it."""

    seq: int
    hash: str
    entries: int
    at: datetime
    signature: str

    @classmethod
    def signed(cls, key: bytes, seq: int, head: str, entries: int, at: datetime) -> Checkpoint:
        return cls(seq, head, entries, at, checkpoint_signature(key, seq, head, entries, at))

    def signature_holds(self, key: bytes) -> bool:
        """Whether the signature was made with `key` over exactly these fields."""
        expected = checkpoint_signature(key, self.seq, self.hash, self.entries, self.at)
        return hmac.compare_digest(expected, self.signature)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "entries": self.entries,
            "at": self.at.isoformat(),
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        """A checkpoint as webhooks and syslog carry it: the event, or its `data`; ValueError if not one."""
        body = data.get("data", data) if isinstance(data.get("data"), dict) else data
        try:
            at = datetime.fromisoformat(str(body["at"]))
            return cls(int(body["seq"]), str(body["hash"]), int(body["entries"]), at, str(body["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"not an audit checkpoint (needs seq, hash, entries, at, signature): {exc}"
            ) from None
