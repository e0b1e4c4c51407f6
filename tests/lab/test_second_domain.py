"""The lab's second directory of each kind (issue 17): a Samba AD domain at 127.0.0.2 beside the
first at 127.0.0.1 on the same ports, a migrated person (sIDHistory), a look-alike (same display
name, nothing else), a second Graph tenant and a second Okta org with their own users, written
into clampdown.toml as [providers.emea-*] with their kind."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import ldap3
import pytest

from clampdown.config import load_settings
from clampdown.connectors.ad import ADConnector, ADSettings
from clampdown.connectors.ad.references import sid_from_bytes
from clampdown.connectors.registry import build_connectors
from clampdown.errors import ClampdownError
from clampdown_lab.component import LabService
from clampdown_lab.orchestrator import lab_down, lab_status
from clampdown_lab.people import EMEA, EMEA_PEOPLE
from clampdown_lab.samba import SambaLab, SambaLabComponent
from tests.lab.conftest import SECOND_LAB_DIR

pytestmark = pytest.mark.samba

LDAP_PORT = 389


def _listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses with a TCP socket listening on `port`, from the kernel's table."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def _settings(section: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "kind"}


def _read(conn: Any, base: str, username: str) -> dict[str, Any]:
    """A user's attributes read over LDAP (raw values: SIDs as bytes)."""
    conn.search(base, f"(sAMAccountName={username})", attributes=[
        "objectSid", "sIDHistory", "displayName", "userPrincipalName", "sAMAccountName"])  # fmt: skip
    entries = [e for e in conn.response if e.get("type") == "searchResEntry"]
    assert len(entries) == 1, username
    return dict(entries[0]["raw_attributes"])


def test_the_second_dc_listens_at_127_0_0_2_beside_the_first(
    first_ad: LabService, second_ad: LabService
) -> None:
    # Each DC binds its own address only: neither holds 0.0.0.0 nor the other's address.
    assert {"127.0.0.1", "127.0.0.2"} <= _listening_addresses(LDAP_PORT)
    assert "0.0.0.0" not in _listening_addresses(LDAP_PORT)
    assert second_ad.url == "ldaps://127.0.0.2:636" and first_ad.url == "ldaps://127.0.0.1:636"
    contexts = {}
    for service in (first_ad, second_ad):
        lab_dir = Path(service.details["samba_dir"])
        host = service.url.removeprefix("ldaps://").split(":")[0]
        # The certificate names the DC and its address, verified against its own lab CA.
        verify = ssl.create_default_context(cafile=str(lab_dir / "tls" / "ca.pem"))
        with (
            socket.create_connection((host, 636), timeout=5) as raw,
            verify.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.version()
        lab = SambaLab(lab_dir, EMEA) if service is second_ad else SambaLab(lab_dir)
        conn = lab.directory.connect()
        try:
            conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["defaultNamingContext"])
            contexts[host] = "".join(conn.response[0]["attributes"]["defaultNamingContext"])
        finally:
            conn.unbind()
    assert contexts == {"127.0.0.1": "DC=lab,DC=example,DC=test", "127.0.0.2": "DC=emea,DC=example,DC=test"}
    krb5 = (Path(second_ad.details["samba_dir"]) / "krb5.conf").read_text()
    assert "kdc = 127.0.0.2" in krb5 and "EMEA.EXAMPLE.TEST" in krb5


async def test_the_emea_action_account_binds_over_ldaps_and_acts_in_its_ou(second_ad: LabService) -> None:
    settings = ADSettings.model_validate(_settings(second_ad.provider_config))
    assert second_ad.name == "emea-ad" and second_ad.provider_config["kind"] == "ad"
    assert settings.bind_user == "svc-clampdown@emea.example.test"  # the delegated account, not an admin
    connector = ADConnector(settings)
    try:
        await connector.check()
        lena = await connector.resolve_user("lena.fischer@emea.example.test")
        assert lena.id == second_ad.people["lena.fischer"]["objectGUID"]
        assert lena.attributes["objectSid"] == second_ad.people["lena.fischer"]["objectSid"]
        assert (await connector.read_state(lena)).enabled is True
        with pytest.raises(ClampdownError):  # the first domain's people are not in this one
            await connector.resolve_user("carol.diaz@lab.example.test")
    finally:
        await connector.aclose()


def test_the_migrated_accounts_carry_their_lab_sid_in_sid_history(
    first_ad: LabService, second_ad: LabService
) -> None:
    lab = SambaLab(Path(second_ad.details["samba_dir"]), EMEA)
    conn = lab.directory.connect()
    try:
        for username, upn in (("alice.martin", "alice.martin@lab.example.test"),
                              ("heidi.schmidt", "heidi.schmidt@emea.example.test")):  # fmt: skip
            emea = _read(conn, EMEA.base_dn, username)
            lab_sid = first_ad.people[username]["objectSid"]
            assert [sid_from_bytes(s) for s in emea["sIDHistory"]] == [lab_sid]  # read back over LDAP
            assert sid_from_bytes(emea["objectSid"][0]) != lab_sid  # a new account in the new forest
            assert emea["userPrincipalName"] == [upn.encode()]
            assert second_ad.people[username]["sIDHistory"] == lab_sid
        assert first_ad.people["alice.martin"]["upn"] == "alice.martin@lab.example.test"  # Alice kept hers
    finally:
        conn.unbind()


def test_the_look_alike_shares_only_the_display_name(first_ad: LabService, second_ad: LabService) -> None:
    lab_bob, emea_bob = first_ad.people["bob.nguyen"], second_ad.people["bnguyen"]
    lab = SambaLab(Path(second_ad.details["samba_dir"]), EMEA)
    conn = lab.directory.connect()
    try:
        emea = _read(conn, EMEA.base_dn, "bnguyen")
    finally:
        conn.unbind()
    assert emea["displayName"] == [b"Bob Nguyen"]
    assert emea["userPrincipalName"] == [b"bob.nguyen@emea.example.test"] != [lab_bob["upn"].encode()]
    assert sid_from_bytes(emea["objectSid"][0]) == emea_bob["objectSid"] != lab_bob["objectSid"]
    assert emea_bob["sAMAccountName"] != lab_bob["sAMAccountName"]
    assert not emea.get("sIDHistory") and "sIDHistory" not in emea_bob


async def test_lab_up_second_writes_the_emea_providers_and_their_people(
    lab_with_second: tuple[Path, list[LabService]],
) -> None:
    lab_dir, services = lab_with_second
    assert [s.name for s in services] == ["ad", "entra", "okta", "emea-ad", "emea-entra", "emea-okta"]
    providers = tomllib.loads((lab_dir / "clampdown.toml").read_text())["providers"]
    assert {n: s.get("kind") for n, s in providers.items()} == {
        "ad": None, "entra": None, "okta": None, "emea-ad": "ad", "emea-entra": "entra", "emea-okta": "okta",
    }  # fmt: skip
    assert providers["emea-entra"]["tenant_id"] != providers["entra"]["tenant_id"]
    assert providers["emea-okta"]["org_url"] != providers["okta"]["org_url"]
    people = {p["upn"]: p for p in json.loads((lab_dir / "lab.json").read_text())["people"]}
    alice, look_alike = people["alice.martin@lab.example.test"], people["bob.nguyen@emea.example.test"]
    assert {"ad", "entra", "okta", "emea-ad", "emea-entra", "emea-okta"} <= alice.keys()
    assert alice["emea-ad"]["sIDHistory"] == alice["ad"]["objectSid"]
    assert alice["emea-entra"]["id"] != alice["entra"]["id"]  # ids unique across tenants and orgs
    assert alice["emea-okta"]["id"] != alice["okta"]["id"]
    assert look_alike["display_name"] == people["bob.nguyen@lab.example.test"]["display_name"]
    assert {"ad", "entra", "okta"}.isdisjoint(look_alike) and "emea-okta" in look_alike

    # The product's own loader and registry build a connector per section, the EMEA ones by kind.
    connectors = build_connectors(load_settings(lab_dir / "clampdown.toml"))
    try:
        entra, emea_entra = connectors["entra"], connectors["emea-entra"]
        bob = await emea_entra.resolve_user("bob.nguyen@emea.example.test")
        assert bob.id == look_alike["emea-entra"]["id"]
        # Entra users of the second tenant are synced from the second domain: its objectSid.
        linked = await emea_entra.resolve_user(look_alike["emea-ad"]["objectSid"])
        assert linked.id == bob.id
        migrated = await emea_entra.resolve_user(alice["emea-ad"]["objectSid"])
        assert migrated.id == alice["emea-entra"]["id"]
        with pytest.raises(ClampdownError):  # each tenant answers with its own users
            await entra.resolve_user("bob.nguyen@emea.example.test")
        okta, emea_okta = connectors["okta"], connectors["emea-okta"]
        lena = await emea_okta.resolve_user("lena.fischer@emea.example.test")
        assert lena.id == people["lena.fischer@emea.example.test"]["emea-okta"]["id"]
        with pytest.raises(ClampdownError):
            await okta.resolve_user("lena.fischer@emea.example.test")
        assert (await emea_okta.resolve_user("alice.martin@lab.example.test")).id == alice["emea-okta"]["id"]
        emea_bob = await connectors["emea-ad"].resolve_user("bob.nguyen@emea.example.test")
        assert emea_bob.id == look_alike["emea-ad"]["objectGUID"]
    finally:
        for connector in connectors.values():
            await connector.aclose()

    status = lab_status(lab_dir)
    assert list(status) == ["ad", "entra", "okta", "emea-ad", "emea-entra", "emea-okta"]
    assert all("running" in line for line in status.values()), status
    assert "127.0.0.2" in status["emea-ad"]
    assert _status_command(lab_dir).returncode == 0


def _status_command(lab_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clampdown", "lab", "status", "--dir", str(lab_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_lab_down_stops_the_second_parts_and_up_brings_them_back(
    lab_with_second: tuple[Path, list[LabService]], second_ad: LabService
) -> None:
    lab_dir, _ = lab_with_second
    # Without the DC folders, lab_down stops only this dir's four emulators (the DCs are shared).
    for name in ("samba", EMEA.folder("samba")):
        (lab_dir / name).unlink()
    lab_down(lab_dir)
    status = lab_status(lab_dir)
    assert all("stopped" in line for line in status.values()), status
    done = _status_command(lab_dir)  # scripts can rely on its exit code
    assert done.returncode == 1 and "stopped: ad, entra, okta, emea-ad, emea-entra, emea-okta" in done.stderr
    # The EMEA DC's own down and up: stopped, then the same domain and people again.
    component = SambaLabComponent(EMEA)
    component.down(SECOND_LAB_DIR)
    assert component.status(SECOND_LAB_DIR) == "stopped"
    assert "127.0.0.2" not in _listening_addresses(LDAP_PORT)
    assert "127.0.0.1" in _listening_addresses(LDAP_PORT)  # the first domain's DC is not touched
    again = component.up(SECOND_LAB_DIR, EMEA_PEOPLE)
    assert again.people["lena.fischer"] == second_ad.people["lena.fischer"]
    assert "running" in component.status(SECOND_LAB_DIR)
