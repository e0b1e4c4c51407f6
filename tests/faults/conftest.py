"""Fault tests run against the lab's shared Samba AD DC (one per machine) and emulators of their own."""

from __future__ import annotations

import os

import pytest

from clampdown_lab.samba import SambaLab
from tests.web.conftest import _samba_up
from tests.web.lab import LAB_DIR


@pytest.fixture(scope="session")
def samba() -> SambaLab:
    """The shared DC, started if nobody has (and then left running: other sessions use it)."""
    if os.geteuid() != 0:
        pytest.skip("the Samba AD DC needs root (ports 88/389/636 on loopback)")
    _samba_up()
    return SambaLab(LAB_DIR / "samba")
