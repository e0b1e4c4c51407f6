"""Pacing under Okta's rate limits: bulk runs stay under the limit, 429s wait for the reset."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from clampdown.connectors.okta import OktaConnector
from clampdown.errors import TransientError
from clampdown.model import Account
from clampdown_lab.okta_emulator import Fault
from tests.okta.org import Org, context


def _people(org: Org, count: int) -> list[Account]:
    return [org.add(f"bulk{i:03d}@lab.example.test") for i in range(count)]


async def test_bulk_suspend_stays_under_the_limit(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    org.emulator.limiter.configure(limits={"other": 15}, window_seconds=2.0)
    people = _people(org, 30)
    connector = make_connector(clear_sessions=False, max_concurrency=8)
    started = time.monotonic()
    outcomes = await asyncio.gather(*(connector.suspend_user(a, context()) for a in people))
    elapsed = time.monotonic() - started
    assert all(o.changed for o in outcomes)
    assert {org.user(a.name).status for a in people} == {"SUSPENDED"}
    assert org.statuses().get(429) is None, "the pacer let a request bounce off the limit"
    assert connector.pacer.throttled == 0 and connector.pacer.waited_seconds > 0
    assert elapsed >= 2.0 - 0.25  # 30 requests at 15 per window need two windows


async def test_a_shared_bucket_is_paced_across_action_types(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    """Suspend and session clearing count in the same Okta bucket; the pacer knows it."""
    org.emulator.limiter.configure(limits={"other": 12}, window_seconds=2.0)
    people = _people(org, 10)
    connector = make_connector(max_concurrency=6)
    await asyncio.gather(*(connector.suspend_user(a, context()) for a in people))
    assert {org.user(a.name).sessions for a in people} == {0}
    assert org.statuses().get(429) is None


async def test_concurrency_limit_refusals_are_waited_out(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    org.emulator.limiter.configure(concurrency=2)
    org.emulator.faults.add(Fault(kind="delay", delay=0.2, path=".*/lifecycle/suspend", count=12))
    people = _people(org, 12)
    connector = make_connector(clear_sessions=False, max_concurrency=6)
    await asyncio.gather(*(connector.suspend_user(a, context()) for a in people))
    assert {org.user(a.name).status for a in people} == {"SUSPENDED"}
    assert connector.pacer.throttled > 0  # Okta said 429 with limit 0; each one was retried
    assert len(org.events("user.lifecycle.suspend")) == 12


async def test_429_from_another_client_waits_for_the_reset(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    """Someone else used the window up: the connector waits for X-Rate-Limit-Reset, then succeeds."""
    org.emulator.limiter.configure(limits={"other": 3}, window_seconds=2.0)
    bystander = org.add("bystander@lab.example.test")
    for _ in range(3):  # another API client uses the whole window
        org.emulator.limiter.admit("other")
        org.emulator.limiter.release()
    connector = make_connector(clear_sessions=False)
    started = time.monotonic()
    outcome = await connector.suspend_user(bystander, context())
    assert outcome.changed and org.user(bystander.name).status == "SUSPENDED"
    assert connector.pacer.throttled == 1 and org.statuses()[429] == 1
    assert time.monotonic() - started >= 0.5


async def test_a_reset_beyond_the_wait_budget_is_transient_with_retry_after(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    org.emulator.limiter.configure(limits={"other": 1}, window_seconds=60.0)
    first, second = _people(org, 2)
    connector = make_connector(clear_sessions=False, max_throttle_wait_seconds=2)
    await connector.suspend_user(first, context())
    with pytest.raises(TransientError) as caught:
        await connector.suspend_user(second, context())
    assert caught.value.code == "okta_rate_limited"
    assert caught.value.retry_after is not None and 50 <= caught.value.retry_after <= 62
    assert org.user(second.name).status == "ACTIVE"


async def test_each_window_is_used_to_the_last_request(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    """Exactly two windows' worth of requests take two windows, not three: no budget is wasted."""
    org.emulator.limiter.configure(limits={"other": 12}, window_seconds=2.0)
    people = _people(org, 24)
    connector = make_connector(clear_sessions=False, max_concurrency=8)
    started = time.monotonic()
    await asyncio.gather(*(connector.suspend_user(a, context()) for a in people))
    elapsed = time.monotonic() - started
    assert {org.user(a.name).status for a in people} == {"SUSPENDED"}
    assert org.statuses().get(429) is None
    assert elapsed < 4.0, f"{elapsed:.1f} s: a third window was needed"
