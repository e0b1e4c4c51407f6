"""A real `clampdown serve` (tests/api's), on SQLite only: the views do not depend on the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import server, server_factory  # noqa: F401


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'clampdown.db'}"
