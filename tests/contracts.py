"""Where the providers' contracts are: ../shared/contracts beside the checkout (as CI lays it out),
or $CLAMPDOWN_CONTRACTS."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def contracts_dir() -> Path:
    """The shared contracts folder; a clear failure if it is missing."""
    explicit = os.environ.get("CLAMPDOWN_CONTRACTS")
    candidates = (
        [Path(explicit)]
        if explicit
        else [REPO.parent / "shared" / "contracts", Path("/work/shared/contracts")]
    )
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(f"provider contracts not found in {', '.join(map(str, candidates))}")
