"""The AD tests run against the real Samba AD DC of the lab, started once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import ldap3
import pytest

from clampdown.connectors.ad import ADConnector, ADSettings
from clampdown_lab.people import DEMO_PEOPLE, DemoPerson
from clampdown_lab.samba import SambaLab, SambaLabComponent
from clampdown_lab.samba.component import run_script, samba_running
from clampdown_lab.samba.seed import MANAGED_OU, create_user
from tests.ad.ad_checks import USER_PASSWORD, ScratchUser

REPO = Path(__file__).resolve().parents[2]
# Same dir as `clampdown lab up` by default, so a running lab DC is reused (one DC per machine).
LAB_DIR = Path(os.environ.get("CLAMPDOWN_AD_LAB_DIR", REPO / ".lab")).resolve()


@pytest.fixture(scope="session")
def lab() -> Iterator[SambaLab]:
    """The lab DC with its people; stopped at the end only if this session started it."""
    if os.geteuid() != 0:
        pytest.skip("the Samba AD DC needs root (ports 88/389/636 on loopback)")
    samba_dir = LAB_DIR / "samba"
    started_here = samba_running(samba_dir) is None
    SambaLabComponent().up(LAB_DIR, DEMO_PEOPLE)
    yield SambaLab(samba_dir)
    if started_here and not os.environ.get("CLAMPDOWN_AD_KEEP_SAMBA"):
        run_script("samba-down.sh", samba_dir)


@pytest.fixture(scope="session")
def admin(lab: SambaLab) -> Iterator[Any]:
    """An Administrator connection, to prepare users and to check what landed in the directory."""
    conn = lab.directory.connect()
    yield conn
    conn.unbind()


@pytest.fixture(scope="session")
def ad_settings(lab: SambaLab) -> ADSettings:
    return ADSettings.model_validate(lab.provider_config())


@pytest.fixture(scope="session")
async def ad(ad_settings: ADSettings) -> AsyncIterator[ADConnector]:
    """The connector with the delegated action account (simple bind over verified LDAPS)."""
    connector = ADConnector(ad_settings)
    yield connector
    await connector.aclose()


@pytest.fixture(scope="session")
async def ad_random_password(ad_settings: ADSettings) -> AsyncIterator[ADConnector]:
    """The same connector configured to set a new random password on force_password_reset."""
    connector = ADConnector(ad_settings.model_copy(update={"set_random_password": True}))
    yield connector
    await connector.aclose()


@pytest.fixture
def make_user(admin: Any) -> Iterator[Callable[..., ScratchUser]]:
    """Create users (default: enabled, in OU=Managed); all deleted after the test."""
    created: list[str] = []

    def make(ou: str = MANAGED_OU, uac: int = 0x200, prefix: str = "t") -> ScratchUser:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        person = DemoPerson(name, "Test", name, "QA", "Test user")
        ids = create_user(admin, person, ou, USER_PASSWORD)
        created.append(ids["dn"])
        if uac != 0x200:
            admin.modify(ids["dn"], {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(uac)])]})
        return ScratchUser(ids)

    yield make
    for dn in created:
        admin.delete(dn)
