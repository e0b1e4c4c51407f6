"""One bad row or one failing rule stops nothing (issue 15): a rule fed poisoned events alerts on
them, acts on the good rows and records what it skipped; a rule that raises is recorded as failed,
waits its interval, and the rules after it still run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import DataError
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog
from clampdown.auth.principal import Principal
from clampdown.engine.worker import Worker
from clampdown.hunting import schedule
from clampdown.hunting.files import read_jsonl
from clampdown.hunting.ingest import ingest_windows
from clampdown.hunting.rules import get_rule, list_alerts, run_due_rules
from clampdown.hunting.schedule import run_schedule
from clampdown.hunting.service import HuntingService
from clampdown.limits import MAX_IDEMPOTENCY_KEY
from clampdown.model import ActionFilter, ActionStatus
from clampdown.services.actions import ActionService, BulkRequest
from tests.hunting.evtx_writer import SecurityEvent
from tests.hunting.scenario import BRUTE_USER, START, security_events, write_jsonl
from tests.hunting.test_ingest_and_hunt import BRUTE_FORCE_KQL
from tests.hunting.test_rule_arming import Env, env  # noqa: F401  (rules over the audit chain, both databases)
from tests.services.conftest import FAST

LONG = "x" * 600  # past the 512 characters a target may have
NUL = "eve\x00l"  # PostgreSQL cannot store a NUL
CONTROL = "ctl\x01\x1b[31mname"  # control characters the service takes as a reference
KEY_SIZED = "k" * 300  # past String(256) if it were ever used as a key as it is
POISON = [LONG, NUL, CONTROL, KEY_SIZED]


def _poisoned_day(path: Path) -> Path:
    """The known day, and eleven failed logons for each poisoned user name from one address."""
    events: list[SecurityEvent] = security_events()
    for n, name in enumerate(POISON):
        for i in range(11):
            events.append(
                SecurityEvent(
                    4625, START + timedelta(hours=4, minutes=n, seconds=i), len(events) + 1,
                    [("TargetUserName", name), ("TargetDomainName", "LAB"), ("Status", "0xc000006d"),
                     ("SubStatus", "0xc000006a"), ("LogonType", "3"), ("IpAddress", "198.51.100.9"),
                     ("IpPort", "50000")],
                )
            )  # fmt: skip
    return write_jsonl(path, events)


async def _rule_runs(engine: AsyncEngine) -> list[tuple[str, dict[str, Any]]]:
    return [(r["subject"], r["data"]) async for r in AuditLog(engine).rows() if r["event"] == "rule.run"]


async def test_a_rule_fed_poisoned_events_acts_on_the_good_rows_and_records_what_it_skipped(
    env: Env,  # noqa: F811
    engine: AsyncEngine,
    tmp_path: Path,
) -> None:
    service = env.service
    ingest_windows(service.store, read_jsonl(_poisoned_day(tmp_path / "poisoned.ndjson")))
    await service.create_rule(
        env.operator, "brute force", BRUTE_FORCE_KQL, 300, "okta.suspend_user", "AccountName"
    )

    runs = await run_due_rules(service.store, service.actions, service.auth)

    assert [(r.rows, r.new_alerts, r.skipped) for r in runs] == [(5, 5, 2)]
    run = runs[0]
    assert run.batch_id is not None and run.note is not None
    assert run.note == (
        "skipped 2 rows: target 'eve\\x00l' contains a NUL character; target is longer than 512 characters"
    )
    # The good rows are acted on, the long and NUL names are not, and every key fits its column.
    queued = await env.actions.list_actions(ActionFilter(batch_id=run.batch_id))
    assert sorted(a.target for a in queued) == sorted([BRUTE_USER, CONTROL, KEY_SIZED])
    assert all(a.idempotency_key and len(a.idempotency_key) <= MAX_IDEMPOTENCY_KEY for a in queued)
    await Worker(env.actions, service.actions.connectors, FAST).run(until_idle=True)
    done = await env.actions.list_actions(ActionFilter(batch_id=run.batch_id))
    assert {a.status for a in done} == {ActionStatus.COMPLETED}
    for target in (BRUTE_USER, CONTROL, KEY_SIZED):  # the effect where it lands: the directory
        account = await service.actions.connectors["okta"].resolve_user(target)
        assert (await service.actions.connectors["okta"].read_state(account)).enabled is False
    # The provider's id of the long name (303 characters) is stored hashed to fit, and found by it.
    [by_id] = await env.actions.list_actions(ActionFilter(target=f"id-{KEY_SIZED}"))
    assert by_id.target == KEY_SIZED and by_id.account is not None and by_id.account.id == f"id-{KEY_SIZED}"

    # Every row alerted on; the two refused ones say why and carry no batch.
    alerts = {a.account: a for a in list_alerts(service.store)}
    assert set(alerts) == {BRUTE_USER, *POISON}
    assert (alerts[LONG].batch_id, alerts[LONG].skipped) == (None, "target is longer than 512 characters")
    assert alerts[NUL].batch_id is None and "NUL" in (alerts[NUL].skipped or "")
    assert {alerts[a].batch_id for a in (BRUTE_USER, CONTROL, KEY_SIZED)} == {run.batch_id}
    assert all(alerts[a].skipped is None for a in (BRUTE_USER, CONTROL, KEY_SIZED))

    # The rule's last run says so, its schedule moved on, and the audit event counts the skipped rows.
    rule = get_rule(service.store, "brute force")
    assert rule.last_run_at is not None and rule.last_run_error is None
    assert (rule.last_run_skipped, rule.last_run_note) == (2, run.note)
    assert not rule.due(rule.last_run_at + timedelta(seconds=299))
    [(subject, data)] = await _rule_runs(engine)
    assert (subject, data["skipped"], data["note"], data["batch_id"]) == (
        "brute force",
        2,
        run.note,
        run.batch_id,
    )
    assert "\x00" not in data["note"]

    # The next run finds nothing new: the poisoned rows are not skipped (nor counted) again.
    rule_now = await service.run_rule_now(env.admin, "brute force")
    assert (rule_now.new_alerts, rule_now.skipped, rule_now.batch_id) == (0, 0, None)


class _ExplodingActions(ActionService):
    """The action service with a driver error for one action type, as PostgreSQL raises for a value
    it cannot store: not a Clampdown error."""

    calls = 0

    async def request_bulk(
        self, type_id: str, targets: Sequence[str], reason: str | None, principal: Principal, **kw: Any
    ) -> BulkRequest:
        if type_id == "ad.disable_user":
            self.calls += 1
            raise DataError(
                "INSERT INTO actions ...", {}, Exception("value too long for type character varying(256)")
            )
        return await super().request_bulk(type_id, targets, reason, principal, **kw)


async def test_a_rule_that_raises_is_recorded_as_failed_waits_its_interval_and_the_next_rules_run(
    env: Env,  # noqa: F811
    engine: AsyncEngine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = env.service
    actions = _ExplodingActions(
        base.actions.store, base.actions.connectors, record_denial=base.auth.record_denial
    )
    service = HuntingService(base.store, actions, base.auth, base.auth.record_denial)
    ingest_windows(service.store, read_jsonl(_poisoned_day(tmp_path / "day.ndjson")))
    # Sorted by name: the failing rule runs first.
    await service.create_rule(env.admin, "a disable", BRUTE_FORCE_KQL, 300, "ad.disable_user", "AccountName")
    await service.create_rule(
        env.admin, "b suspend", BRUTE_FORCE_KQL, 300, "okta.suspend_user", "AccountName"
    )

    with caplog.at_level(logging.ERROR, logger="clampdown.hunting.rules"):
        runs = await run_due_rules(service.store, service.actions, service.auth)

    assert [r.rule for r in runs] == ["b suspend"] and runs[0].batch_id is not None
    assert len(await env.actions.list_actions(ActionFilter(batch_id=runs[0].batch_id))) == 3
    failed = get_rule(service.store, "a disable")
    assert failed.last_run_at is not None
    assert (
        failed.last_run_error
        == "DataError: (builtins.Exception) value too long for type character varying(256)"
    )
    assert list_alerts(service.store, failed.id) == []  # its rows are new again at its next run
    assert [r.message for r in caplog.records] == ["detection rule 'a disable' failed"]
    events = await _rule_runs(engine)
    assert [(s, d.get("error")) for s, d in events] == [
        ("a disable", failed.last_run_error),
        ("b suspend", None),
    ]

    # No hot loop: until its interval has passed, the failed rule is not tried again.
    assert await run_due_rules(service.store, service.actions, service.auth) == []
    assert actions.calls == 1


async def test_the_schedule_waits_its_interval_after_a_round_that_fails(
    env: Env,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds = 0

    async def failing(*args: Any) -> list[Any]:
        nonlocal rounds
        rounds += 1
        raise RuntimeError("the event store went away")

    monkeypatch.setattr(schedule, "run_due_rules", failing)
    stop = asyncio.Event()
    task = asyncio.create_task(run_schedule(env.service, {}, stop))
    await asyncio.sleep(0.6)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert rounds == 1  # not once every 50 ms
