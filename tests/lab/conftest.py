"""The lab's second domain (EMEA) beside the first: its Samba AD DC at 127.0.0.2, kept for the
session like the first domain's DC, and a whole `lab_up(second=True)` in a throw-away lab dir.

The first domain's DC is the AD tests' (tests/ad/conftest.py, LAB_DIR/samba, 127.0.0.1). The
EMEA DC lives in SECOND_LAB_DIR/samba-emea (the repository's .lab unless
CLAMPDOWN_AD_SECOND_LAB_DIR says otherwise); provisioning it takes about 10 s once, starting it
again about 2 s. Each DC is stopped at the end only if this session started it and
CLAMPDOWN_AD_KEEP_SAMBA is unset.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clampdown_lab.component import LabService
from clampdown_lab.orchestrator import components, lab_up, second_components
from clampdown_lab.people import DEMO_PEOPLE, EMEA, EMEA_PEOPLE
from clampdown_lab.samba import SambaLab, SambaLabComponent
from clampdown_lab.samba.component import run_script, samba_running
from tests.ad.conftest import LAB_DIR, REPO, lab

__all__ = ["lab"]  # the AD tests' DC fixture, used by name below

SECOND_LAB_DIR = Path(os.environ.get("CLAMPDOWN_AD_SECOND_LAB_DIR", REPO / ".lab")).resolve()


def _stop_if_started_here(samba_dir: Path, started_here: bool) -> None:
    if started_here and not os.environ.get("CLAMPDOWN_AD_KEEP_SAMBA"):
        run_script("samba-down.sh", samba_dir)


@pytest.fixture(scope="session")
def first_ad(lab: SambaLab) -> LabService:
    """The first domain's DC (127.0.0.1) with the demo people, as `clampdown lab up` starts it:
    the AD tests' DC (tests/ad/conftest.py), started and stopped there."""
    return SambaLabComponent().up(LAB_DIR, DEMO_PEOPLE)


@pytest.fixture(scope="session")
def second_ad(first_ad: LabService) -> Iterator[LabService]:
    """The EMEA DC at 127.0.0.2 with its people, the migrated ones linked to the first domain."""
    samba_dir = SECOND_LAB_DIR / EMEA.folder("samba")
    started_here = samba_running(samba_dir) is None
    component = SambaLabComponent(EMEA)
    service = component.up(SECOND_LAB_DIR, EMEA_PEOPLE)
    linked = component.link(SECOND_LAB_DIR, [first_ad, service])
    assert linked is not None
    yield linked
    _stop_if_started_here(samba_dir, started_here)


@pytest.fixture(scope="session")
def lab_with_second(
    second_ad: LabService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, list[LabService]]]:
    """`lab_up(dir, second=True)` in a new lab dir whose DC folders are the session's DCs (the
    machine has one address per domain); the four emulators it starts are stopped after."""
    lab_dir = tmp_path_factory.mktemp("lab-second")
    (lab_dir / "samba").symlink_to(LAB_DIR / "samba")
    (lab_dir / EMEA.folder("samba")).symlink_to(SECOND_LAB_DIR / EMEA.folder("samba"))
    services = lab_up(lab_dir, second=True)
    yield lab_dir, services
    for component in [*components(), *second_components()]:
        if not isinstance(component, SambaLabComponent):  # never the DCs through the links
            component.down(lab_dir)
