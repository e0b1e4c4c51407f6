"""Every AD action and its inverse, read back from the Samba directory; binds show 773 and 533."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ldap3
import pytest

from clampdown.connectors.ad import ADConnector
from clampdown.connectors.ad.failures import bind_data_code
from clampdown.model import AccountState, ActionContext
from clampdown_lab.samba import SambaLab
from tests.ad.ad_checks import ScratchUser, bind_as, context, read_int

pytestmark = pytest.mark.samba

DONT_EXPIRE = 0x10000
NOT_DELEGATED = 0x100000


async def test_disable_and_enable_flip_only_accountdisable(
    ad: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user(uac=0x200 | NOT_DELEGATED)
    account = await ad.resolve_user(user.sam)

    outcome = await ad.disable_user(account, context())
    assert outcome.changed
    assert read_int(admin, user.dn, "userAccountControl") == 0x200 | NOT_DELEGATED | 0x2
    bound = bind_as(lab, user.upn, user.password)
    assert bound["result"] == 49 and bind_data_code(bound["message"]) == "533"

    again = await ad.disable_user(account, context())
    assert not again.changed

    outcome = await ad.enable_user(account, context())
    assert outcome.changed
    assert read_int(admin, user.dn, "userAccountControl") == 0x200 | NOT_DELEGATED
    assert bind_as(lab, user.upn, user.password)["result"] == 0
    assert not (await ad.enable_user(account, context())).changed


async def test_undo_leaves_a_user_as_they_were_before_the_undone_action(
    ad: ADConnector, admin: Any, make_user: Callable[..., ScratchUser]
) -> None:
    disabled, enabled = make_user(uac=0x202), make_user()
    was_disabled = ActionContext(1, "undo", "pytest", restore_state=AccountState(
        enabled=False, values={"must_change_password": True}))
    was_enabled = ActionContext(1, "undo", "pytest", restore_state=AccountState(
        enabled=True, values={"must_change_password": False}))
    account = await ad.resolve_user(disabled.sam)
    assert not (await ad.enable_user(account, was_disabled)).changed
    admin.modify(disabled.dn, {"pwdLastSet": [(ldap3.MODIFY_REPLACE, ["0"])]})
    assert not (await ad.clear_password_reset(account, was_disabled)).changed
    assert read_int(admin, disabled.dn, "userAccountControl") == 0x202
    assert read_int(admin, disabled.dn, "pwdLastSet") == 0

    account = await ad.resolve_user(enabled.sam)
    assert not (await ad.disable_user(account, was_enabled)).changed
    assert not (await ad.force_password_reset(account, was_enabled)).changed
    assert read_int(admin, enabled.dn, "userAccountControl") == 0x200
    assert read_int(admin, enabled.dn, "pwdLastSet") > 0


async def test_force_and_clear_password_reset(
    ad: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user()
    account = await ad.resolve_user(user.upn)
    assert read_int(admin, user.dn, "pwdLastSet") > 0

    outcome = await ad.force_password_reset(account, context())
    assert outcome.changed and not outcome.details["password_set"]
    assert read_int(admin, user.dn, "pwdLastSet") == 0
    bound = bind_as(lab, user.upn, user.password)
    assert bound["result"] == 49 and bind_data_code(bound["message"]) == "773"
    state = await ad.read_state(account)
    assert state.values["must_change_password"] is True
    assert not (await ad.force_password_reset(account, context())).changed

    outcome = await ad.clear_password_reset(account, context())
    assert outcome.changed
    assert read_int(admin, user.dn, "pwdLastSet") > 0
    assert bind_as(lab, user.upn, user.password)["result"] == 0
    assert not (await ad.clear_password_reset(account, context())).changed


async def test_random_password_replaces_the_old_one_and_is_not_returned(
    ad_random_password: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user(uac=0x200 | DONT_EXPIRE)
    account = await ad_random_password.resolve_user(user.sam)
    outcome = await ad_random_password.force_password_reset(account, context())
    assert outcome.changed and outcome.details["password_set"]
    assert outcome.details["dont_expire_cleared"] is True  # tests/ad/test_eviction.py has the rest
    assert "new_password" not in outcome.details
    assert read_int(admin, user.dn, "pwdLastSet") == 0
    bound = bind_as(lab, user.upn, user.password)
    assert bound["result"] == 49 and bind_data_code(bound["message"]) == "52e"


async def test_read_state_for_the_user_page(
    ad: ADConnector, admin: Any, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user()
    admin.modify(
        "CN=Remote Desktop Users,CN=Builtin,DC=lab,DC=example,DC=test",
        {"member": [(0, [user.dn])]},  # MODIFY_ADD
    )
    account = await ad.resolve_user(user.sam)
    state = await ad.read_state(account)
    assert state.enabled is True and state.status == "enabled"
    assert state.values["dn"] == user.dn
    assert state.values["locked_out"] is False
    assert state.values["groups"] == ["Remote Desktop Users"]
    assert state.values["adminCount"] == 0
    assert state.values["password_last_set_at"]
    assert "NORMAL_ACCOUNT" in state.values["flags"]  # type: ignore[operator]

    for _ in range(5):  # the lab locks an account out after 5 bad passwords
        bind_as(lab, user.upn, "wrong-password")
    bound = bind_as(lab, user.upn, user.password)
    assert bind_data_code(bound["message"]) == "775"
    state = await ad.read_state(account)
    assert state.values["locked_out"] is True and state.status == "locked_out"
    assert state.values["locked_out_at"]
