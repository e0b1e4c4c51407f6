"""The delegated action account acts inside OU=Managed only; doctor reports the same beforehand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ldap3
import pytest
from ldap3.protocol.microsoft import security_descriptor_control

from clampdown.connectors.ad import ADConnector
from clampdown.connectors.ad.doctor import diagnose_ad
from clampdown.errors import ActionAccountError
from clampdown_lab.samba.seed import BASE_DN, MANAGED_OU, OTHER_OU
from tests.ad.ad_checks import ScratchUser, context, read_int

pytestmark = pytest.mark.samba

ACTIONS = ("disable_user", "enable_user", "force_password_reset", "clear_password_reset")


def protect_like_sdprop(admin: Any, dn: str) -> None:
    """What SDProp does to a privileged account: AdminSDHolder's (protected) ACL and adminCount=1."""
    dacl = security_descriptor_control(sdflags=0x04)
    admin.search(
        f"CN=AdminSDHolder,CN=System,{BASE_DN}",
        "(objectClass=*)",
        ldap3.BASE,
        attributes=["nTSecurityDescriptor"],
        controls=dacl,
    )
    descriptor = bytearray(admin.response[0]["raw_attributes"]["nTSecurityDescriptor"][0])
    # SE_DACL_PROTECTED: no ACE inherited from the OU (Samba's AdminSDHolder lacks it; Windows' has it).
    descriptor[2:4] = (int.from_bytes(descriptor[2:4], "little") | 0x1000).to_bytes(2, "little")
    admin.modify(
        dn,
        {
            "nTSecurityDescriptor": [(ldap3.MODIFY_REPLACE, [bytes(descriptor)])],
            "adminCount": [(ldap3.MODIFY_REPLACE, ["1"])],
        },
        controls=dacl,
    )
    assert admin.result["result"] == 0, admin.result


async def test_outside_its_ou_every_action_fails_and_changes_nothing(
    ad: ADConnector, admin: Any, make_user: Callable[..., ScratchUser]
) -> None:
    enabled = make_user(ou=OTHER_OU)
    disabled = make_user(ou=OTHER_OU, uac=0x202)
    admin.modify(disabled.dn, {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]})
    # Each action meets a user it would really change.
    cases = [
        (enabled, "disable_user"),
        (enabled, "force_password_reset"),
        (disabled, "enable_user"),
        (disabled, "clear_password_reset"),
    ]
    for user, method in cases:
        account = await ad.resolve_user(user.sam)
        with pytest.raises(ActionAccountError) as caught:
            await getattr(ad, method)(account, context())
        assert f"the action account lacks rights on {user.dn}" in caught.value.message
        assert "(LDAP 50)" in caught.value.message
    assert read_int(admin, enabled.dn, "userAccountControl") == 512
    assert read_int(admin, enabled.dn, "pwdLastSet") > 0
    assert read_int(admin, disabled.dn, "userAccountControl") == 0x202
    assert read_int(admin, disabled.dn, "pwdLastSet") == 0


async def test_adminsdholder_protected_user_error_says_why(
    ad: ADConnector, admin: Any, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user()
    protect_like_sdprop(admin, user.dn)
    account = await ad.resolve_user(user.sam)
    with pytest.raises(ActionAccountError) as caught:
        await ad.disable_user(account, context())
    assert "AdminSDHolder" in caught.value.message and "adminCount=1" in caught.value.message
    assert read_int(admin, user.dn, "userAccountControl") == 512

    report = await diagnose_ad(ad, users=[user.sam])
    (target,) = report.targets
    assert not target.ok and not target.grants
    assert any("AdminSDHolder" in note for note in target.notes)


async def test_doctor_matches_what_the_directory_allows(
    ad: ADConnector, make_user: Callable[..., ScratchUser]
) -> None:
    inside, outside = make_user(), make_user(ou=OTHER_OU)
    report = await diagnose_ad(ad, ous=[MANAGED_OU, OTHER_OU], users=[inside.sam, outside.sam])
    assert report.account_dn == f"CN=svc-clampdown,CN=Users,{BASE_DN}"
    managed, other, user_in, user_out = report.targets
    assert managed.ok and user_in.ok and not managed.grants
    assert all(check.allowed for check in managed.actions)
    for target in (other, user_out):
        assert not target.ok
        assert {c.action for c in target.actions if not c.allowed} == {f"ad.{m}" for m in ACTIONS}
        assert f'dsacls "{OTHER_OU}" /I:S /G "LAB\\svc-clampdown:WP;userAccountControl;user"' in target.grants
        # Least privilege: Reset Password is not asked for while set_random_password is off.
        assert not any("Reset Password" in grant for grant in target.grants)
    text = "\n".join(report.lines())
    assert "missing Write userAccountControl" in text and not report.ok


async def test_doctor_with_random_passwords_checks_reset_password(
    ad_settings: Any, make_user: Callable[..., ScratchUser]
) -> None:
    connector = ADConnector(ad_settings.model_copy(update={"set_random_password": True}))
    inside = make_user()
    try:
        report = await diagnose_ad(connector, ous=[MANAGED_OU, OTHER_OU], users=[inside.sam])
    finally:
        await connector.aclose()
    managed, other, user_in = report.targets
    assert managed.ok and user_in.ok
    reset = next(c for c in other.actions if c.action == "ad.force_password_reset")
    assert "Reset Password (extended right)" in reset.missing


async def test_doctor_reports_a_bind_failure_instead_of_raising(ad_settings: Any) -> None:
    from pydantic import SecretStr

    connector = ADConnector(ad_settings.model_copy(update={"bind_password": SecretStr("wrong")}))
    report = await diagnose_ad(connector)
    await connector.aclose()
    assert not report.ok and report.error and "password is wrong" in report.error


async def test_random_password_outside_its_ou_names_the_reset_password_right(
    ad_random_password: ADConnector, admin: Any, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user(ou=OTHER_OU)
    account = await ad_random_password.resolve_user(user.sam)
    before = read_int(admin, user.dn, "pwdLastSet")
    with pytest.raises(ActionAccountError, match="Reset Password extended right"):
        await ad_random_password.force_password_reset(account, context())
    assert read_int(admin, user.dn, "pwdLastSet") == before
