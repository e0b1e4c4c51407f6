"""Browser tests: a real `clampdown serve` on the lab, driven by Debian's Chromium through Playwright.

The tests are plain (sync) functions: Playwright's sync API cannot run inside an asyncio loop."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest
import tomli_w
from playwright.sync_api import Browser, Page, sync_playwright

from clampdown.errors import ConfigError
from clampdown_lab.component import LabService
from clampdown_lab.graph_emulator.component import GraphLabComponent
from clampdown_lab.okta_emulator.component import OktaLabComponent
from clampdown_lab.people import DEMO_PEOPLE
from clampdown_lab.samba import SambaLab, SambaLabComponent
from clampdown_lab.samba.component import LDAPS_URL, run_script, samba_running
from clampdown_lab.samba.seed import seed_people
from tests.api.conftest import server, server_factory, start_server  # noqa: F401  (fixtures: a real `clampdown serve`)
from tests.lab_config import clampdown
from tests.web.lab import LAB_DIR, ScratchPerson, WebLab, create_person, delete_person

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Console:
    """The running console and its users: an analyst (Global Administrator), a reader (Security
    Reader) and a second responder (Security Administrator, who approves the analyst's requests)."""

    base: str
    config: Path
    admin_token: str
    reader_token: str


@pytest.fixture(scope="session")
def web_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebLab]:
    """Samba from LAB_DIR (reused if running; stopped at the end only if started here), and this
    session's own Okta and Graph emulators."""
    if os.geteuid() != 0:
        pytest.skip("the Samba AD DC needs root (ports 88/389/636 on loopback)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    samba_dir = LAB_DIR / "samba"
    was_running = samba_running(samba_dir) is not None
    ad, ran_up = _samba_up()
    started_here = ran_up and not was_running
    home = tmp_path_factory.mktemp("web-lab")
    graph, okta = GraphLabComponent(), OktaLabComponent()
    entra = graph.up(home, DEMO_PEOPLE, on_premises=ad.people)
    okta_service = okta.up(home, DEMO_PEOPLE)
    yield WebLab(SambaLab(samba_dir), ad, entra, okta_service, home / "entra")
    okta.down(home)
    graph.down(home)
    if started_here and not os.environ.get("CLAMPDOWN_AD_KEEP_SAMBA"):
        run_script("samba-down.sh", samba_dir)


def _samba_up() -> tuple[LabService, bool]:
    """Start or reuse the shared DC. Another session may be (re)starting it right now (the AD tests
    restart it), and two concurrent samba-up.sh runs can leave samba-up.pid naming the loser: then
    the DC that answers is reused as it is. Returns the service and whether samba-up.sh ran."""
    deadline = time.monotonic() + 90
    while True:
        try:
            return SambaLabComponent().up(LAB_DIR, DEMO_PEOPLE), True
        except (ConfigError, ldap3.core.exceptions.LDAPException):
            running = _answering_dc()
            if running is not None:
                return running, False
            if time.monotonic() > deadline:
                raise
            time.sleep(3)


def _answering_dc() -> LabService | None:
    """The running DC of LAB_DIR as a lab service, if it answers as Administrator."""
    lab = SambaLab(LAB_DIR / "samba")
    try:
        ids = seed_people(lab.directory, DEMO_PEOPLE, lab.people_password_file.read_text().strip())
    except (OSError, ldap3.core.exceptions.LDAPException):
        return None
    people = {p.username: ids[p.username] for p in DEMO_PEOPLE}
    return LabService("ad", LDAPS_URL, lab.provider_config(), people)


def _user(config: Path, username: str, role: str) -> str:
    made = clampdown(config, "users", "create", username, "--role", role, "--password-stdin", input=PASSWORD)
    assert made.returncode == 0, made.stderr
    issued = clampdown(config, "tokens", "create", "--user", username)
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


@pytest.fixture(scope="session")
def console(web_lab: WebLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`clampdown serve` on SQLite with the embedded worker, configured for the lab."""
    home = tmp_path_factory.mktemp("web-console")
    config = home / "clampdown.toml"
    settings = {
        "database": {"url": f"sqlite:///{home / 'clampdown.db'}"},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.1},
        "providers": web_lab.provider_configs(),
    }
    config.write_text(tomli_w.dumps(settings), encoding="utf-8")
    upgraded = clampdown(config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    admin_token = _user(config, "analyst", "Global Administrator")
    reader_token = _user(config, "reader", "Security Reader")
    _user(config, "second", "Security Administrator")  # the second person of four-eyes approvals
    proc, base = start_server(config)
    yield Console(base, config, admin_token, reader_token)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop running while it is open, and the
    async fixtures of other modules (tests/web/test_pages.py) need the thread's loop free."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) at 1280x800, failing the test on any script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert not errors, f"script errors in the page: {errors}"


@pytest.fixture
def person(web_lab: WebLab) -> Iterator[ScratchPerson]:
    """A new person in AD, Entra ID and Okta; the AD account is deleted afterwards."""
    made = create_person(web_lab)
    yield made
    delete_person(web_lab, made)


def sign_in(page: Page, console: Console, username: str) -> None:
    """Through the sign-in page, as a person would."""
    page.goto(f"{console.base}/users")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.base}/users")
