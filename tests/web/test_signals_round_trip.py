"""Issue 21's round trip on the lab, as the lab wires it (clampdown_lab/signals.py): the Okta org
transmits a RISC credential-compromise about a person over the push stream it holds to Clampdown;
Clampdown's detection rule contains them with the `contain` playbook (read back in Samba and the
Okta emulator); Clampdown's account-disabled SET reaches the org's security-events endpoint, which
verifies it against Clampdown's published JWKS, and so does this test, from the metadata on; on
release, account-enabled follows. The console's Shared Signals page shows both directions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import tomli_w
from playwright.sync_api import Page, expect

from clampdown.config import load_settings
from clampdown_lab.signals import RULE, ensure_signal_rule, register_with_okta, signals_config
from tests.api.conftest import free_port, start_server
from tests.lab_config import clampdown
from tests.waiting import wait_for
from tests.web.conftest import Console, _user, sign_in
from tests.web.lab import ScratchPerson, WebLab

pytestmark = pytest.mark.samba

CREDENTIAL_COMPROMISE = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise"
ACCOUNT_DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
ACCOUNT_ENABLED = "https://schemas.openid.net/secevent/risc/event-type/account-enabled"


@dataclass(frozen=True)
class Served:
    base: str
    config: Path
    token: str

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.request(method, f"{self.base}{path}", headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def served(web_lab: WebLab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`clampdown serve` with the lab's [ssf] section (for this server's port), the org and
    Clampdown registered with each other, and the lab's detection rule armed by the analyst."""
    home = tmp_path_factory.mktemp("signals-round-trip")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = home / "clampdown.toml"
    data = {
        "database": {"url": f"sqlite:///{home / 'clampdown.db'}"},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.1},
        "hunting": {"events_path": str(home / "events.duckdb")},
        "providers": web_lab.provider_configs(),
        "ssf": signals_config(home, web_lab.okta, base),
    }
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    assert clampdown(config, "db", "upgrade").returncode == 0
    token = _user(config, "analyst", "Global Administrator")
    settings = load_settings(config)
    register_with_okta(web_lab.okta, settings)
    asyncio.run(ensure_signal_rule(settings, "analyst"))
    proc, base = start_server(config, port)
    yield Served(base, config, token)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _received_by_org(web_lab: WebLab, issuer: str, event: str, email: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{web_lab.okta.url}/_emulator/ssf/received", timeout=10)
    answer.raise_for_status()
    return [
        r for r in answer.json()["received"]
        if r.get("claims", {}).get("iss") == issuer and event in r["claims"].get("events", {})
        and r["claims"].get("sub_id", {}).get("email", "").lower() == email.lower()
    ]  # fmt: skip


def _sent_token(served: Served, jti: str) -> str:
    """The SET as Clampdown signed it, from its outbox."""
    with sqlite3.connect(served.config.parent / "clampdown.db") as db:
        row = db.execute("SELECT token FROM ssf_outbox WHERE jti = ?", (jti,)).fetchone()
    assert row is not None, jti
    return str(row[0])


def test_a_signal_from_okta_contains_the_person_and_clampdown_tells_okta(
    web_lab: WebLab, served: Served, person: ScratchPerson, page: Page
) -> None:
    # The org transmits a RISC credential-compromise about the person (`clampdown lab signal`, as
    # the demo does): Clampdown takes it in.
    lab_dir = served.config.parent
    (lab_dir / "lab.json").write_text(json.dumps({"services": {"okta": {"url": web_lab.okta.url}}}))
    nobody = clampdown(served.config, "lab", "signal", "nobody@lab.example.test", "--dir", str(lab_dir))
    assert (nobody.returncode, "no such user" in nobody.stderr) == (1, True), nobody.stderr
    sent = clampdown(served.config, "lab", "signal", person.upn, "--dir", str(lab_dir))
    assert sent.returncode == 0 and "transmitted credential-compromise" in sent.stdout, sent.stderr
    query = f"SecuritySignals | where AccountUpn == '{person.upn}' | project EventName, Resolved, Transmitter"

    def signalled() -> Any:
        rows = served.api("POST", "/api/v1/hunting/query", json={"query": query}).json()["rows"]
        return rows

    found = wait_for(signalled, "the org's SET in SecuritySignals", 60, every=0.3)
    assert found == [["credential-compromise", True, "okta"]]

    # The lab's rule contains the person (run now rather than waiting for its minute).
    run = served.api("POST", f"/api/v1/hunting/rules/{RULE}/run")
    assert run.status_code == 200, run.text
    (containment_id,) = run.json()["containment_ids"]
    shown = served.api("GET", f"/api/v1/containments/{containment_id}").json()
    assert (shown["person"].lower(), shown["playbook"]) == (person.upn.lower(), "contain")

    def settled() -> Any:
        c = served.api("GET", f"/api/v1/containments/{containment_id}").json()
        steps = [a for a in c["actions"] if a["containment_role"] == "step"]
        ended = steps and all(a["status"] in ("completed", "failed", "cancelled") for a in steps)
        return c if ended else None

    contained = wait_for(settled, "every step ended", 120, every=0.3)
    failed = [(a["type"], a["result"]) for a in contained["actions"] if a["status"] == "failed"]
    assert not failed, failed
    assert web_lab.ad_disabled(person.ad_dn) is True
    assert web_lab.okta_status(person.okta_id) == "SUSPENDED"

    # Clampdown's SET reaches the org, which verified it against Clampdown's JWKS...
    received = wait_for(lambda: _received_by_org(web_lab, served.base, ACCOUNT_DISABLED, person.upn),
                        "account-disabled at the org", 60, every=0.3)  # fmt: skip
    assert received[0]["result"] == "accepted", received[0]
    token = _sent_token(served, received[0]["claims"]["jti"])
    # ...and it verifies here too, from Clampdown's published metadata to its JWKS.
    metadata = httpx.get(f"{served.base}/.well-known/ssf-configuration", timeout=10).json()
    assert metadata["issuer"] == served.base
    keys = jwt.PyJWKSet.from_dict(httpx.get(metadata["jwks_uri"], timeout=10).json())
    header = jwt.get_unverified_header(token)
    key = next(k for k in keys.keys if k.key_id == header["kid"])
    claims = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=web_lab.okta.url,
                        issuer=served.base)  # fmt: skip
    assert header["typ"] == "secevent+jwt" and ACCOUNT_DISABLED in claims["events"]
    assert claims["txn"] == f"containment-{containment_id}"

    # Release: the accounts come back, and the org hears account-enabled.
    released = served.api("POST", "/api/v1/playbooks/release/run",
                          json={"target": person.upn, "reason": "credential rotated"})  # fmt: skip
    assert released.status_code in (200, 202), released.text
    wait_for(lambda: web_lab.ad_disabled(person.ad_dn) is False, "the AD account enabled again",
             120, every=0.3)  # fmt: skip
    enabled = wait_for(lambda: _received_by_org(web_lab, served.base, ACCOUNT_ENABLED, person.upn),
                       "account-enabled at the org", 120, every=0.3)  # fmt: skip
    assert enabled[0]["result"] == "accepted", enabled[0]
    # Every SET Clampdown sent the org was accepted (session-revoked too, which Okta acts on).
    everything = httpx.get(f"{web_lab.okta.url}/_emulator/ssf/received", timeout=10).json()["received"]
    ours = [r for r in everything if r["claims"].get("iss") == served.base]
    outcomes = [(r["result"], r["description"]) for r in ours]
    assert ours and all(result == "accepted" for result, _ in outcomes), outcomes

    # The console's Shared Signals page: the receiver's accepted SET, the stream to the org healthy.
    sign_in(page, Console(served.base, served.config, served.token, served.token), "analyst")
    page.goto(f"{served.base}/settings/signals")
    expect(page.get_by_role("heading", name="Shared Signals")).to_be_visible()
    expect(page.get_by_text(web_lab.okta.url).first).to_be_visible()
    expect(page.get_by_text("credential-compromise").first).to_be_visible()
    expect(page.get_by_text("account-disabled").first).to_be_visible()
