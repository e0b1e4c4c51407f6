"""The containment lifecycle against the lab, one test per scenario of issue 13: the real
`clampdown` command in subprocesses, a real worker, and every effect read where it lands (Samba,
the Graph emulator, the Okta emulator). Scenario 7 (identity links) is tests/guardrails/test_identity.py,
scenario 8 (rule arming) tests/hunting/test_rule_arming.py.

The timed scenarios use an `until` a few seconds ahead and wait for it to pass."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.guardrails.conftest import write
from tests.guardrails.test_playbooks import _world
from tests.lab_config import clampdown, create_user_token, spawn_worker
from tests.web.lab import ScratchPerson, WebLab, create_person, delete_person

T = TypeVar("T")


@dataclass
class Clampdown:
    """One Clampdown configured for one scenario, two Global Administrators (four eyes) and a
    worker running beside it."""

    config: Path
    lead: str
    second: str

    def run(self, *args: str, token: str | None = None) -> Any:
        """`clampdown <args> --json` as the lead (or `token`); its JSON, failing on a non-zero exit."""
        t0 = time.monotonic()
        done = clampdown(self.config, *args, "--json", token=token or self.lead)
        print("TIMING", args[:2], round(time.monotonic() - t0, 2))
        assert done.returncode == 0, f"clampdown {' '.join(args)}: {done.stdout}{done.stderr}"
        return json.loads(done.stdout)

    def action(self, action_id: int) -> Any:
        return self.run("actions", "show", str(action_id))

    def containments(self, who: ScratchPerson) -> list[Any]:
        """The person's containments, newest first, as `clampdown containments list` shows them."""
        return list(self.run("containments", "list", "--person", who.upn))

    def containment(self, containment_id: int) -> Any:
        return self.run("containments", "show", str(containment_id))


@pytest.fixture
def lab_clampdown(web_lab: WebLab, tmp_path: Path) -> Iterator[Callable[..., Clampdown]]:
    """Start a Clampdown on the lab with these config sections (over conftest.write's), its
    database migrated, its users made and a worker running; the workers stop after the test."""
    workers = []

    def start(**sections: Any) -> Clampdown:
        config = write(tmp_path / "clampdown.toml", web_lab, **sections)
        upgraded = clampdown(config, "db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        made = Clampdown(config, create_user_token(config, "lead", "Global Administrator"),
                         create_user_token(config, "second", "Global Administrator"))  # fmt: skip
        workers.append(spawn_worker(config))
        return made

    yield start
    for worker in workers:
        worker.terminate()
        worker.wait(15)


@pytest.fixture
def other(web_lab: WebLab) -> Iterator[ScratchPerson]:
    """A second scratch person."""
    made = create_person(web_lab, "Otto", "Other")
    yield made
    delete_person(web_lab, made)


def _soon(seconds: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _sleep_past(when: datetime, margin: float = 0.0) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds() + margin))


def _eventually(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 30) -> T:
    """`read()` again until `done` holds of it (or `timeout` seconds pass); its last value."""
    deadline = time.monotonic() + timeout
    value = read()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.3)
        value = read()
    return value


def _contained(world: dict[str, Any]) -> bool:
    return bool(world["ad_uac"] & 2) and not world["entra_enabled"] and world["okta"] == "SUSPENDED"


def _by_role(containment: Any) -> dict[str, list[Any]]:
    roles: dict[str, list[Any]] = {}
    for action in containment["actions"]:
        roles.setdefault(action["containment_role"], []).append(action)
    return roles


def test_9_timed_containment_with_the_default_playbook_releases_what_has_an_inverse(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    cd = lab_clampdown()  # no [playbooks]: the default `contain`
    before = _world(web_lab, person)
    until = _soon(12)
    run = cd.run("contain", person.upn, "-r", "INC-43", "--until", _iso(until), "--wait")
    assert run["notes"] == [f"entra.revoke_sessions has no inverse: it is not undone at {until.isoformat()}"]
    steps = [a for a in run["actions"] if a["containment_role"] == "step"]
    timers = {a["type"] for a in run["actions"] if a["containment_role"] == "timer"}
    assert {a["status"] for a in steps} == {"completed"}, steps
    assert timers == {"ad.enable_user", "ad.clear_password_reset", "entra.enable_user",
                      "entra.dismiss_user_risk", "okta.unsuspend_user"}  # fmt: skip
    assert _contained(_world(web_lab, person))
    [listed] = cd.containments(person)
    assert (listed["id"], listed["state"], listed["until"]) == (run["containment_id"], "active", _iso(until))

    _sleep_past(until)
    after = _eventually(lambda: _world(web_lab, person), lambda w: w == before)
    assert after == before
    shown = _eventually(lambda: cd.containment(run["containment_id"]), lambda c: c["state"] == "expired")
    assert shown["state"] == "expired" and shown["ended_by"] == "timer"
    assert {a["status"] for a in _by_role(shown)["timer"]} == {"completed"}
    assert run["notes"][0] in shown["notes"]


def test_3_release_after_the_timed_release_has_nothing_to_release(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    cd = lab_clampdown()
    before = _world(web_lab, person)
    until = _soon(8)
    run = cd.run("contain", person.upn, "-r", "INC-45", "--until", _iso(until), "--wait")
    assert _contained(_world(web_lab, person))
    _sleep_past(until)
    shown = _eventually(lambda: cd.containment(run["containment_id"]), lambda c: c["state"] == "expired")
    assert shown["state"] == "expired", shown
    assert _world(web_lab, person) == before
    actions_before = cd.run("actions", "list")

    refused = clampdown(cd.config, "release", person.upn, "-r", "done", "--wait", token=cd.lead)
    assert refused.returncode != 0
    message = " ".join(refused.stderr.split())
    assert f"nothing to release: containment {run['containment_id']} is expired" in message, message
    time.sleep(1.5)  # a worker that had something to run would have started it
    assert cd.run("actions", "list") == actions_before  # nothing queued
    assert _world(web_lab, person) == before
