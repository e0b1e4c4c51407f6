"""What each lab part (Samba AD, Okta emulator, Graph emulator) offers to `clampdown lab`."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from clampdown_lab.people import DemoPerson


@dataclass(frozen=True)
class LabService:
    """A started lab part: where it listens, its ready `[providers.NAME]` section, the people's ids."""

    name: str  # provider name: "ad", "entra", "okta"
    url: str
    provider_config: dict[str, Any]  # written as [providers.<name>] in DIR/clampdown.toml
    people: dict[str, dict[str, str]] = field(default_factory=dict)  # username -> ids in this provider
    details: dict[str, Any] = field(default_factory=dict)  # anything else worth listing in lab.json


class LabComponent(Protocol):
    """One lab part. `up` is idempotent: a running part is reused and re-seeded only if needed."""

    name: str

    def up(self, lab_dir: Path, people: tuple[DemoPerson, ...]) -> LabService:
        """Start (or reuse) the part in the background, seed the people, return how to reach it."""
        ...

    def down(self, lab_dir: Path) -> None:
        """Stop exactly what `up` started under lab_dir."""
        ...

    def status(self, lab_dir: Path) -> str:
        """One line: running where, or stopped."""
        ...

    def running(self, lab_dir: Path) -> bool:
        """Whether the part started under lab_dir runs now."""
        ...


def secret_file(lab_dir: Path, name: str) -> Path:
    """A random secret in DIR/name, made once and kept (readable by its owner only)."""
    path = lab_dir / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        os.chmod(path, 0o600)
    return path
