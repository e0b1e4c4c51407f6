"""SIGKILL of `clampdown serve` (SQLite, embedded worker) in the middle of a `contain` of 20
people and a bulk of 500, then a restart: every action ends once, none stays running, and the
providers' own change logs (Samba's replication metadata, the Okta System Log) show each account
changed once.

Okta answers each lifecycle call after 50 ms (a delay fault, about what a real org takes), so the
kill can land while requests are in flight: one that reached the org changed the user, but its
answer never reached the worker. Its re-run after the lease expired must find the user already
suspended and write nothing (the test allows "no change" only on a re-run). Most of what is
`running` at the kill was claimed but not yet sent (docs/benchmarks.md).

Set CLAMPDOWN_FAULTS_RESULTS to a file to append the measurements as one JSON line
(docs/benchmarks.md, "Faults: SIGKILL of serve (SQLite)")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.db.database import create_engine
from clampdown.model import Action, ActionFilter, ActionStatus
from clampdown.store.actions import ActionStore
from clampdown_lab.okta_emulator.faults import Fault
from clampdown_lab.okta_emulator.ratelimit import DEFAULT_LIMITS
from clampdown_lab.okta_emulator.server import EmulatorServer, EmulatorSettings, build_emulator
from clampdown_lab.people import DemoPerson
from clampdown_lab.samba import SambaLab
from clampdown_lab.samba.seed import MANAGED_OU, create_user
from tests.api.conftest import start_server
from tests.faults.change_logs import (
    PWD_LAST_SET,
    USER_ACCOUNT_CONTROL,
    okta_events,
    versions_per_write,
    write_versions,
)
from tests.lab_config import bootstrap_admin

pytestmark = [pytest.mark.slow, pytest.mark.samba]

PEOPLE = 20
BULK = 500
LEASE_SECONDS = 3.0
OKTA_LATENCY = 0.05
PASSWORD = "Fault-Test-Pw-7310!"
OKTA_TOKEN = "00-fault-test-token-5a1c"
CONTAIN = {"steps": [{"action": "ad.disable_user"},
                     {"action": "ad.force_password_reset", "after": "ad.disable_user"},
                     {"action": "okta.suspend_user"}]}  # fmt: skip
STEPS_PER_PERSON = len(CONTAIN["steps"])
# The AD attribute each AD step writes, and the Okta System Log event of okta.suspend_user.
AD_WRITES = {"ad.disable_user": USER_ACCOUNT_CONTROL, "ad.force_password_reset": PWD_LAST_SET}
OKTA_SUSPEND_EVENT = "user.lifecycle.suspend"


class Lab:
    """The scratch people (AD and Okta) and bulk users (Okta) of one test; the Okta org is this
    test's own emulator, in memory (the lab's saves its whole org to disk after every change, which
    would make the emulator, not Clampdown, what the recovery time measures)."""

    def __init__(self, samba: SambaLab, okta: EmulatorServer) -> None:
        self.samba = samba
        self.okta = okta
        self.run = uuid.uuid4().hex[:6]
        self.people: list[dict[str, str]] = []  # upn, dn, okta_id
        self.bulk: dict[str, str] = {}  # login -> Okta id
        self.per_write: dict[int, int] = {}  # attid -> version increase of one write, measured
        self.conn = samba.directory.connect()

    def create(self) -> None:
        probe = DemoPerson(f"fk{self.run}-probe", "Fault", f"Probe {self.run}", "Security", "Test user")
        probe_dn = create_user(self.conn, probe, MANAGED_OU, PASSWORD)["dn"]
        try:
            changes = {USER_ACCOUNT_CONTROL: ("userAccountControl", "514"), PWD_LAST_SET: ("pwdLastSet", "0")}
            self.per_write = versions_per_write(self.conn, probe_dn, changes)
        finally:
            self.conn.delete(probe_dn)
        profiles = []
        for n in range(PEOPLE):
            username = f"fk{self.run}-{n:02d}"  # sAMAccountName: at most 20 characters
            person = DemoPerson(username, "Fault", f"Kill {self.run} {n:02d}", "Security", "Test user")
            ids = create_user(self.conn, person, MANAGED_OU, PASSWORD)
            self.people.append({"upn": person.upn, "dn": ids["dn"]})
            profiles.append({"login": person.upn, "email": person.upn, "firstName": "Fault",
                             "lastName": f"Kill {self.run} {n:02d}"})  # fmt: skip
        logins = [f"fk{self.run}-bulk{n:03d}@lab.example.test" for n in range(BULK)]
        profiles += [{"login": x, "email": x, "firstName": "Bulk", "lastName": x} for x in logins]
        answer = httpx.post(f"{self.okta.url}/_emulator/users", json={"users": profiles}, timeout=60)
        answer.raise_for_status()
        ids = answer.json()["ids"]
        for person in self.people:
            person["okta_id"] = ids[person["upn"]]
        self.bulk = {login: ids[login] for login in logins}

    def providers(self) -> dict[str, Any]:
        return {
            "ad": self.samba.provider_config(),
            "okta": {"org_url": self.okta.url, "api_token": OKTA_TOKEN},
        }

    def versions(self) -> dict[str, dict[int, int]]:
        return {p["dn"]: write_versions(self.conn, p["dn"]) for p in self.people}

    def close(self) -> None:
        for person in self.people:
            self.conn.delete(person["dn"])
        self.conn.unbind()


@pytest.fixture
def fault_lab(samba: SambaLab) -> Iterator[Lab]:
    """Scratch people in Samba and an Okta org of the test's own, its rate limits lifted (they are
    another fault test) and its lifecycle calls answered after 50 ms."""
    settings = EmulatorSettings(api_tokens={OKTA_TOKEN: "clampdown.action@lab.example.test"},
                                limits=dict.fromkeys(DEFAULT_LIMITS, 100_000))  # fmt: skip
    okta = EmulatorServer(build_emulator(settings)).start()
    okta.emulator.faults.add(Fault("delay", r"/api/v1/users/[^/]+/lifecycle/.*", "POST", 10 * BULK,
                                   delay=OKTA_LATENCY))  # fmt: skip
    lab = Lab(samba, okta)
    try:
        lab.create()
        yield lab
    finally:
        lab.close()
        okta.stop()


async def _counts(store: ActionStore) -> Counter[ActionStatus]:
    return Counter(await store.count_by_status(ActionFilter()))


async def _all_actions(store: ActionStore) -> list[Action]:
    found: list[Action] = []
    before: int | None = None
    while page := await store.list_actions(ActionFilter(), limit=500, before_id=before):
        found += page
        before = page[-1].id
    return found


def _unfinished(counts: Counter[ActionStatus]) -> int:
    return sum(n for status, n in counts.items() if not status.is_final)


async def _request_everything(base: str, token: str, lab: Lab) -> list[dict[str, Any]]:
    """The bulk first (so the contain's Okta steps queue behind it), then the 20 containments."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as client:
        request = {"type": "okta.suspend_user", "targets": list(lab.bulk), "reason": "INC-1500 fault test"}
        bulk = await client.post("/api/v1/actions/bulk", json=request)
        assert bulk.status_code == 202, bulk.text
        limit = asyncio.Semaphore(4)

        async def contain(upn: str) -> dict[str, Any]:
            async with limit:
                run = await client.post("/api/v1/playbooks/contain/run",
                                        json={"target": upn, "reason": "INC-1500 fault test"})  # fmt: skip
            assert run.status_code == 202, run.text
            return dict(run.json())

        return await asyncio.gather(*(contain(p["upn"]) for p in lab.people))


async def test_sigkill_of_serve_mid_contain_and_bulk_ends_each_action_once(
    fault_lab: Lab, tmp_path: Path
) -> None:
    lab = fault_lab
    database_url = f"sqlite:///{tmp_path / 'clampdown.db'}"
    settings = {
        "database": {"url": database_url},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.05, "lease_seconds": LEASE_SECONDS},
        "providers": lab.providers(),
        "playbooks": {"contain": CONTAIN},
    }
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(settings), encoding="utf-8")
    token = bootstrap_admin(config)
    before = lab.versions()
    engine: AsyncEngine = create_engine(database_url)
    store = ActionStore(engine)
    served, base = start_server(config)
    try:
        runs = await _request_everything(base, token, lab)
        assert all(len(r["actions"]) == STEPS_PER_PERSON for r in runs), runs[0]
        # Kill at a moment the worker holds actions (some answered, some in flight, some waiting).
        deadline = time.monotonic() + 60
        while True:
            counts = await _counts(store)
            if counts[ActionStatus.COMPLETED] >= 100 and counts[ActionStatus.RUNNING] > 0:
                break
            assert time.monotonic() < deadline, f"never mid-run: {counts}"
            await asyncio.sleep(0.05)
        served.send_signal(signal.SIGKILL)
        served.wait(10)
        at_kill = await _counts(store)
        assert at_kill[ActionStatus.RUNNING] > 0 and _unfinished(at_kill) > 0, at_kill
        contained = {a["id"] for r in runs for a in r["actions"]}
        open_steps = [a for a in await _all_actions(store) if a.id in contained and not a.status.is_final]
        assert open_steps, "the kill should land in the middle of the containments too"

        restarted = time.monotonic()
        served, base = start_server(config)
        deadline = restarted + 120
        while _unfinished(counts := await _counts(store)):
            assert time.monotonic() < deadline, f"the queue never drained after the restart: {counts}"
            await asyncio.sleep(0.1)
        drained_after = time.monotonic() - restarted
        done = await _all_actions(store)
    finally:
        served.terminate()
        try:
            served.wait(30)
        except subprocess.TimeoutExpired:
            served.kill()
            raise
        finally:
            await engine.dispose()

    # Every action ended once: completed, nothing failed, nothing left running or queued.
    assert len(done) == BULK + PEOPLE * STEPS_PER_PERSON
    unfinished = [(a.id, a.type, a.status, a.error_code, a.error_message)
                  for a in done if a.status is not ActionStatus.COMPLETED]  # fmt: skip
    assert not unfinished, unfinished
    rerun = [a for a in done if a.attempts > 1]
    assert rerun, "the actions running at the kill were run again after their lease expired"
    assert all(any(h.error_code == "interrupted" for h in a.history) for a in rerun)
    # Claimed once by the killed serve at most and once by the new one: a worker never takes an
    # action again that it is running itself, however late its heartbeat under load.
    assert Counter(a.attempts for a in done).keys() <= {1, 2}, Counter(a.attempts for a in done)
    assert len({(a.type, a.target) for a in done}) == len(done), "one action per account and step"

    # Samba: each AD step wrote its attribute exactly once, even when it was re-run.
    after = lab.versions()
    ad_steps = [a for a in done if a.type in AD_WRITES]
    assert len(ad_steps) == 2 * PEOPLE
    dns = {key.lower(): p["dn"] for p in lab.people for key in (p["upn"], p["dn"])}
    for action in ad_steps:
        assert action.account is not None
        dn = dns[action.account.attributes.get("dn", action.account.name).lower()]
        attid = AD_WRITES[action.type]
        writes, remainder = divmod(after[dn][attid] - before[dn][attid], lab.per_write[attid])
        seen = f"{action.type} on {dn} (attempt {action.attempts}): {writes} writes, {remainder} more"
        assert (writes, remainder) == (1, 0), seen
        assert action.state_before is not None
    # Okta: one suspend event per user in the org's own System Log, for the bulk and the people.
    suspended = okta_events(lab.okta.url, OKTA_TOKEN, OKTA_SUSPEND_EVENT)
    ours = {*lab.bulk.values(), *(p["okta_id"] for p in lab.people)}
    assert {user: suspended[user] for user in ours} == dict.fromkeys(ours, 1)
    # A re-run whose effect had landed before the kill saw it and reported no change.
    unchanged = [a for a in done if a.changed is False]
    assert all(a.attempts > 1 for a in unchanged), [(a.id, a.type, a.attempts) for a in unchanged]

    _record({
        "test": "sigkill_serve_sqlite", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "actions": len(done), "people": PEOPLE, "bulk": BULK, "lease_seconds": LEASE_SECONDS,
        "okta_latency_s": OKTA_LATENCY, "at_kill": {s.value: n for s, n in at_kill.items()},
        "contain_steps_open_at_kill": len(open_steps),
        "rerun_after_lease": len(rerun), "rerun_found_done": len(unchanged),
        "restart_to_drained_s": round(drained_after, 2), "load_average": os.getloadavg()[0],
    })  # fmt: skip


def _record(row: dict[str, Any]) -> None:
    """Append the measurements to $CLAMPDOWN_FAULTS_RESULTS as one JSON line, when it is set."""
    print(json.dumps(row))
    target = os.environ.get("CLAMPDOWN_FAULTS_RESULTS")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
