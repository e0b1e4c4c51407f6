"""What the faces need of the audit trail beyond the runtime's log: checkpoints kept elsewhere."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from clampdown.audit.checkpoint import Checkpoint
from clampdown.errors import InvalidInput


def read_outside_checkpoints(paths: Sequence[Path], option: str = "--checkpoint") -> list[Checkpoint]:
    """Checkpoints kept outside the database: files holding `audit.checkpoint` events as JSON (a webhook
    body, a syslog JSON message), one per file or one per line."""
    found = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"{option}: cannot read {path}: {exc.strerror}") from None
        try:
            documents = [json.loads(text)]
        except json.JSONDecodeError:
            documents = []
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    documents.append(json.loads(line))
                except json.JSONDecodeError:
                    raise InvalidInput(f"{option}: {path} line {number} is not JSON") from None
        for document in documents:
            if not isinstance(document, dict):
                raise InvalidInput(f"{option}: {path}: not an audit checkpoint")
            try:
                found.append(Checkpoint.from_json(document))
            except ValueError as exc:
                raise InvalidInput(f"{option}: {path}: {exc}") from None
    return found
