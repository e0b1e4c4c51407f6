"""The engine's batches: many states in one read, many disables with one userAccountControl read."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from clampdown.connectors.ad import ADConnector
from clampdown.connectors.base import BatchingConnector
from clampdown.errors import AccountNotFound, ActionAccountError
from clampdown.model import AccountState, ActionOutcome
from clampdown_lab.samba.seed import OTHER_OU
from tests.ad.ad_checks import ScratchUser, context, read_int

pytestmark = pytest.mark.samba

GONE = "00000000-1111-2222-3333-444444444444"


async def test_batches_read_back_from_the_directory(
    ad: ADConnector, admin: Any, make_user: Callable[..., ScratchUser]
) -> None:
    assert isinstance(ad, BatchingConnector)
    inside = [make_user(), make_user(uac=0x202), make_user()]
    outside = make_user(ou=OTHER_OU)
    accounts = [await ad.resolve_user(u.sam) for u in [*inside, outside]]
    gone = dataclasses.replace(accounts[0], id=GONE)

    states = await ad.read_states([*accounts, gone])
    assert [s.enabled for s in states[:4]] == [True, False, True, True]  # type: ignore[union-attr]
    assert isinstance(states[4], AccountNotFound)

    items = [(a, context()) for a in [*accounts, gone]]
    outcomes = await ad.perform_batch("disable_user", items)
    assert [o.changed for o in outcomes[:3]] == [True, False, True]  # type: ignore[union-attr]
    assert isinstance(outcomes[3], ActionAccountError) and "lacks rights" in str(outcomes[3])
    assert isinstance(outcomes[4], AccountNotFound)
    assert [read_int(admin, u.dn, "userAccountControl") for u in inside] == [0x202] * 3
    assert read_int(admin, outside.dn, "userAccountControl") == 0x200

    undo = [(accounts[0], context()), (accounts[1], dataclasses.replace(
        context(), restore_state=AccountState(enabled=False)))]
    outcomes = await ad.perform_batch("enable_user", undo)
    assert [o.changed for o in outcomes] == [True, False]  # type: ignore[union-attr]
    assert read_int(admin, inside[0].dn, "userAccountControl") == 0x200
    assert read_int(admin, inside[1].dn, "userAccountControl") == 0x202  # was disabled before

    outcomes = await ad.perform_batch("force_password_reset", [(a, context()) for a in accounts[:2]])
    assert all(isinstance(o, ActionOutcome) and o.changed for o in outcomes)
    assert [read_int(admin, u.dn, "pwdLastSet") for u in inside[:2]] == [0, 0]
