"""5xx storms, dropped connections and slow answers: success after retries or a visible failure,
never a lost or duplicated action (one System Log event per user, the final status in the org)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from clampdown.connectors.okta import OktaConnector
from clampdown.errors import TransientError
from clampdown.model import Account, ActionContext, ActionOutcome
from clampdown_lab.okta_emulator import Fault
from tests.okta.org import Org, context

SUSPEND = r".*/lifecycle/suspend"
INJECTS_FAULTS = True  # the injected 5xx answers are outside Okta's contract on purpose


async def like_the_engine(
    connector: OktaConnector,
    method: Callable[[Account, ActionContext], Awaitable[ActionOutcome]],
    account: Account,
    attempts: int = 6,
) -> ActionOutcome:
    """As the engine does: read the state before the action, retry it on TransientError."""
    before = None
    for attempt in range(1, attempts + 1):
        try:
            if before is None:
                before = await connector.read_state(account)
            return await method(account, context(state_before=before))
        except TransientError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def test_short_5xx_storm_ends_in_success(org: Org, connector: OktaConnector) -> None:
    org.emulator.faults.add(Fault(kind="status", status=503, path=SUSPEND, count=2))
    account = await connector.resolve_user("alice.martin@lab.example.test")
    outcome = await connector.suspend_user(account, context())
    assert outcome.changed and org.user(account.name).status == "SUSPENDED"
    assert len(org.events("user.lifecycle.suspend", account.id)) == 1
    assert connector.client.stats.retries == 2


async def test_long_5xx_storm_is_a_visible_transient_failure_then_succeeds(
    org: Org, connector: OktaConnector
) -> None:
    org.emulator.faults.add(Fault(kind="status", status=500, path=SUSPEND, count=5))
    account = await connector.resolve_user("alice.martin@lab.example.test")
    with pytest.raises(TransientError, match=r"HTTP 500 .* 3 times: Internal Server Error") as caught:
        await connector.suspend_user(account, context())
    assert caught.value.code == "okta_unavailable" and caught.value.provider_request_id
    assert org.user(account.name).status == "ACTIVE"  # nothing half-done
    outcome = await like_the_engine(connector, connector.suspend_user, account)
    assert outcome.changed and org.user(account.name).status == "SUSPENDED"
    assert len(org.events("user.lifecycle.suspend", account.id)) == 1


async def test_answer_lost_after_the_change_is_not_repeated(org: Org, connector: OktaConnector) -> None:
    org.emulator.faults.add(Fault(kind="drop_after", path=SUSPEND))
    account = await connector.resolve_user("bob.nguyen@lab.example.test")
    outcome = await connector.suspend_user(account, context())
    # Okta did suspend; the retry met "not ACTIVE" and read SUSPENDED: our own change, reported as one.
    assert outcome.changed
    assert org.user(account.name).status == "SUSPENDED"
    assert len(org.events("user.lifecycle.suspend", account.id)) == 1


async def test_connection_dropped_before_the_change_is_retried(org: Org, connector: OktaConnector) -> None:
    org.emulator.faults.add(Fault(kind="drop_before", path=r".*/lifecycle/unsuspend"))
    account = org.add("was.suspended@lab.example.test", status="SUSPENDED")
    outcome = await connector.unsuspend_user(account, context())
    assert outcome.changed and org.user(account.name).status == "ACTIVE"
    assert len(org.events("user.lifecycle.unsuspend", account.id)) == 1


async def test_slow_answer_times_out_and_is_retried(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    org.emulator.faults.add(Fault(kind="delay", delay=1.0, path=SUSPEND))
    connector = make_connector(timeout_seconds=0.4, clear_sessions=False)
    account = await connector.resolve_user("carol.diaz@lab.example.test")
    outcome = await connector.suspend_user(account, context())
    assert org.user(account.name).status == "SUSPENDED"
    await asyncio.sleep(1.0)  # let the abandoned slow request finish inside the emulator
    assert len(org.events("user.lifecycle.suspend", account.id)) == 1
    assert outcome.changed


async def test_deactivate_survives_dropped_answers(org: Org, connector: OktaConnector) -> None:
    org.emulator.faults.add(Fault(kind="drop_after", path=r".*/lifecycle/deactivate"))
    org.emulator.faults.add(Fault(kind="drop_after", path=r".*/sessions", method="DELETE"))
    account = await connector.resolve_user("dave.okafor@lab.example.test")
    outcome = await like_the_engine(connector, connector.deactivate_user, account)
    assert outcome.changed and org.user(account.name).status == "DEPROVISIONED"
    assert len(org.events("user.lifecycle.deactivate", account.id)) == 1


async def test_bulk_suspend_through_a_mixed_fault_storm(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    people = [org.add(f"storm{i:02d}@lab.example.test") for i in range(40)]
    rng = random.Random(4)
    kinds = ["status"] * 12 + ["drop_after"] * 6 + ["drop_before"] * 6
    rng.shuffle(kinds)
    for kind in kinds:
        path = rng.choice([SUSPEND, r".*/sessions", r"/api/v1/users/[^/]+"])
        org.emulator.faults.add(Fault(kind=kind, status=rng.choice([500, 502, 503]), path=path, count=1))  # type: ignore[arg-type]
    connector = make_connector(max_concurrency=8, retries=1)
    outcomes = await asyncio.gather(*(like_the_engine(connector, connector.suspend_user, a) for a in people))
    assert all(o.changed for o in outcomes)  # each first suspend is reported as a change, once
    for account in people:
        record = org.user(account.name)
        assert (record.status, record.sessions) == ("SUSPENDED", 0)
        assert len(org.events("user.lifecycle.suspend", account.id)) == 1
    assert sum(f.hits for f in org.emulator.faults.faults) > 0
