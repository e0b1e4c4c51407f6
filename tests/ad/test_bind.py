"""How the action account reaches the DC: TLS trust, StartTLS, fail-over, rebind, Kerberos, bad creds."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from clampdown.connectors.ad import ADConnector, ADSettings, DomainController
from clampdown.connectors.ad.doctor import diagnose_ad
from clampdown.errors import ActionAccountError, PermanentError, TransientError
from clampdown_lab.samba import SambaLab, start_samba
from clampdown_lab.samba.component import run_script
from tests.ad.ad_checks import context

pytestmark = pytest.mark.samba


async def _settings_work(settings: ADSettings) -> None:
    connector = ADConnector(settings)
    try:
        await connector.check()
        account = await connector.resolve_user("alice.martin")
        assert (await connector.read_state(account)).values["dn"] == account.attributes["dn"]
    finally:
        await connector.aclose()


async def test_starttls_on_389(ad_settings: ADSettings) -> None:
    starttls = DomainController(url="ldap://127.0.0.1:389")
    await _settings_work(ad_settings.model_copy(update={"servers": [starttls]}))


async def test_fails_over_to_the_next_dc(ad_settings: ADSettings) -> None:
    dead = DomainController(url="ldaps://127.0.0.1:1")
    settings = ad_settings.model_copy(update={"servers": [dead, *ad_settings.servers]})
    await _settings_work(settings)


async def test_no_dc_answering_is_transient(ad_settings: ADSettings) -> None:
    dead = DomainController(url="ldaps://127.0.0.1:1")
    connector = ADConnector(ad_settings.model_copy(update={"servers": [dead], "timeout_seconds": 2}))
    with pytest.raises(TransientError, match="no domain controller answered"):
        await connector.check()
    await connector.aclose()


async def test_untrusted_certificate_is_refused(ad_settings: ADSettings, tmp_path: Path) -> None:
    other_ca = tmp_path / "other-ca.pem"
    # The DC's own certificate is no CA: nothing it signs, itself included, is trusted.
    other_ca.write_text(ssl.get_server_certificate(("127.0.0.1", 636)))
    wrong_name = DomainController(url="ldaps://127.0.0.1:636", name="evil.example.com")
    for update in ({"ca_file": other_ca}, {"servers": [wrong_name]}):
        connector = ADConnector(ad_settings.model_copy(update=update))
        with pytest.raises(PermanentError) as caught:
            await connector.check()
        assert caught.value.code == "tls"
        await connector.aclose()


async def test_unsafe_verification_off_must_be_spelled_out(ad_settings: ADSettings) -> None:
    data = ad_settings.model_dump()
    data["bind_password"] = ad_settings.bind_password.get_secret_value()  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        ADSettings.model_validate({**data, "tls_verify": "off"})
    unsafe = ADSettings.model_validate(
        {**data, "tls_verify": "UNSAFE-do-not-verify-the-domain-controller", "ca_file": None}
    )
    await _settings_work(unsafe)


async def test_wrong_password_names_the_action_account(ad_settings: ADSettings) -> None:
    connector = ADConnector(ad_settings.model_copy(update={"bind_password": SecretStr("not-the-password")}))
    with pytest.raises(ActionAccountError, match=r"svc-clampdown.*password is wrong.*data 52e"):
        await connector.check()
    await connector.aclose()


async def test_rebinds_when_the_dc_drops_connections(ad: ADConnector) -> None:
    await asyncio.gather(*(ad.check() for _ in range(8)))
    for conn in list(ad.pool._idle):
        conn.socket.close()  # as if the DC had dropped them
    account = await ad.resolve_user("alice.martin")
    states = await asyncio.gather(*(ad.read_state(account) for _ in range(16)))
    assert {s.values["dn"] for s in states} == {account.attributes["dn"]}
    assert len(ad.pool._idle) <= ad.settings.pool_size


async def test_kerberos_bind_from_keytab(lab: SambaLab) -> None:
    settings = ADSettings.model_validate(lab.kerberos_config())
    connector = ADConnector(settings)
    try:
        await connector.check()
        account = await connector.resolve_user("bob.nguyen")
        await connector.disable_user(account, context())
        assert (await connector.read_state(account)).enabled is False
        await connector.enable_user(account, context())
        assert (await connector.read_state(account)).enabled is True
        # Bound as the delegated account itself: outside its OU it has no rights (Samba has no WhoAmI).
        # Doctor works with the Kerberos identity too: the OU is delegated; the privileged groups'
        # `member` is not (Tier 0, left out of the lab's delegation), and doctor says so.
        report = await diagnose_ad(connector)
        assert all(t.ok for t in report.targets if t.kind == "ou")
        assert any(t.kind == "group" and not t.ok for t in report.targets)
        outsider = await connector.resolve_user("olivia.other")
        with pytest.raises(ActionAccountError, match="lacks rights"):
            await connector.disable_user(outsider, context())
    finally:
        await connector.aclose()


async def test_kerberos_with_a_principal_not_in_the_keytab_names_the_problem(lab: SambaLab) -> None:
    config = {**lab.kerberos_config(), "principal": "nobody@LAB.EXAMPLE.TEST"}
    connector = ADConnector(ADSettings.model_validate(config))
    with pytest.raises(ActionAccountError, match=r"nobody@LAB\.EXAMPLE\.TEST cannot bind .* with Kerberos"):
        await connector.check()
    await connector.aclose()


def reconnect(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.unbind()
    conn.open()
    conn.bind()


async def test_rebinds_after_the_dc_restarts(lab: SambaLab, admin: Any) -> None:
    connector = ADConnector(ADSettings.model_validate(lab.provider_config()))
    try:
        account = await connector.resolve_user("carol.diaz")
        await asyncio.gather(*(connector.read_state(account) for _ in range(4)))
        run_script("samba-down.sh", lab.samba_dir)
        with pytest.raises(TransientError):
            await connector.read_state(account)
        start_samba(lab.samba_dir)
        reconnect(admin)  # the session's own admin connection died with the DC too
        state = await connector.read_state(account)  # the pooled connections died with the DC
        assert state.values["dn"] == account.attributes["dn"]
    finally:
        await connector.aclose()
