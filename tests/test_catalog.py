"""The catalog holds the fixed action ids, the seed's RBAC table and consistent inverses."""

from __future__ import annotations

import pytest

from clampdown import catalog, permissions
from clampdown.errors import InvalidInput

FIXED_IDS = {
    "ad.disable_user", "ad.enable_user", "ad.force_password_reset",
    "entra.mark_compromised", "entra.dismiss_user_risk", "entra.suspend_user", "entra.enable_user",
    "entra.revoke_sessions", "okta.suspend_user", "okta.unsuspend_user", "okta.deactivate_user",
}  # fmt: skip


def test_fixed_ids_are_present() -> None:
    assert {d.id for d in catalog.all_actions()} >= FIXED_IDS


def test_inverses_point_back() -> None:
    for d in catalog.all_actions():
        if d.inverse is not None:
            inverse = catalog.get_action(d.inverse)
            assert inverse.provider == d.provider and inverse.inverse == d.id
        else:
            assert d.reversible is False, d.id


def test_seed_rbac_table() -> None:
    ga, sa = permissions.GLOBAL_ADMINISTRATOR, permissions.SECURITY_ADMINISTRATOR
    so = permissions.SECURITY_OPERATOR
    assert catalog.get_action("entra.mark_compromised").roles == {ga, sa}
    assert catalog.get_action("entra.suspend_user").roles == {ga}
    assert catalog.get_action("entra.revoke_sessions").roles == {ga}
    for okta in ("okta.suspend_user", "okta.deactivate_user"):
        d = catalog.get_action(okta)
        assert d.roles == {ga, sa, so} and d.permissions == {permissions.RESPONSE_MANAGE}
    for ad in ("ad.disable_user", "ad.enable_user", "ad.force_password_reset"):
        assert catalog.get_action(ad).permissions == {permissions.RESPONSE_MANAGE}


def test_unknown_id_names_the_known_ones() -> None:
    with pytest.raises(InvalidInput, match=r"unknown action 'x\.y'.*okta\.suspend_user"):
        catalog.get_action("x.y")
