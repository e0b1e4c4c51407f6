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
# A short hybrid playbook for the scenarios that are about timers, not steps: AD first, then Entra ID.
SHORT = {"contain": {"steps": [{"action": "ad.disable_user"},
                               {"action": "entra.suspend_user", "after": "ad.disable_user"},
                               {"action": "okta.suspend_user"}]}}  # fmt: skip


@dataclass
class Clampdown:
    """One Clampdown configured for one scenario, two Global Administrators (four eyes) and a
    worker running beside it."""

    config: Path
    lead: str
    second: str

    def run(self, *args: str, token: str | None = None) -> Any:
        """`clampdown <args> --json` as the lead (or `token`); its JSON, failing on a non-zero exit."""
        done = clampdown(self.config, *args, "--json", token=token or self.lead)
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


def _in_time(until: datetime) -> None:
    """The scenario's steps ran before its `until`: else the lab was too slow for this margin."""
    assert datetime.now(UTC) < until, f"the steps took longer than the margin to {until.isoformat()}"


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


def _steps(run: Any, role: str = "step") -> dict[str, Any]:
    """A playbook run's (or a containment's) actions of one role, by type."""
    return {a["type"]: a for a in run["actions"] if a["containment_role"] == role}


def test_1_an_approval_never_carries_a_protected_account_past_its_protection(
    web_lab: WebLab, person: ScratchPerson, other: ScratchPerson, tmp_path: Path,
    lab_clampdown: Callable[..., Clampdown],
) -> None:  # fmt: skip
    """`person` is the break-glass account here: a scratch account, so a regression suspends nobody real."""
    cd = lab_clampdown(protection={"accounts": [person.upn]}, approvals={"actions": ["okta.suspend_user"]})
    users = tmp_path / "users.txt"
    users.write_text(f"{person.upn}\n{other.upn}\n", encoding="utf-8")
    bulk = cd.run("act", "okta.suspend_user", "--from-file", str(users), "-r", "INC-41")
    assert [(a["target"], a["status"], a["approval_reason"]) for a in bulk["actions"]] == [
        (person.upn, "awaiting_approval", "okta.suspend_user needs approval"),
        (other.upn, "awaiting_approval", "okta.suspend_user needs approval"),
    ]
    approved = cd.run("actions", "approve", "--batch", bulk["batch_id"], token=cd.second)
    assert {(a["status"], a["approved_by"]) for a in approved} == {("queued", "second")}

    def batch() -> dict[str, Any]:
        return {a["target"]: a for a in cd.run("actions", "list", "--batch", bulk["batch_id"])}

    ended = _eventually(batch, lambda b: all(a["status"] in ("completed", "failed") for a in b.values()))
    assert ended[other.upn]["status"] == "completed"
    assert web_lab.okta_status(other.okta_id) == "SUSPENDED"
    refused = ended[person.upn]
    assert refused["status"] == "failed" and refused["error"]["code"] == "protected_account", refused
    assert f"named protected account '{person.upn}'" in refused["error"]["message"]
    assert "the approval given covered only: okta.suspend_user needs approval" in refused["error"]["message"]
    assert web_lab.okta_status(person.okta_id) == "ACTIVE"


def test_2_an_old_timed_release_never_undoes_a_newer_containment(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    cd = lab_clampdown(playbooks=SHORT)
    before = _world(web_lab, person)
    until = _soon(25)
    first = cd.run("contain", person.upn, "-r", "INC-43", "--until", _iso(until), "--wait")
    assert {a["status"] for a in _steps(first).values()} == {"completed"}
    released = cd.run("release", person.upn, "-r", "false positive", "--wait")
    assert {a["status"] for a in released["actions"]} == {"completed"}
    assert _world(web_lab, person) == before
    second = cd.run("contain", person.upn, "-r", "INC-44 (a new incident)", "--wait")
    assert {a["status"] for a in _steps(second).values()} == {"completed"}
    _in_time(until)
    old_timers = _steps(cd.containment(first["containment_id"]), "timer")
    assert {(t["status"], t["error"]["code"]) for t in old_timers.values()} == {("cancelled", "released")}

    _sleep_past(until, margin=3)  # the worker runs all along: a timer still due would have run by now
    assert _contained(_world(web_lab, person))
    listed = cd.containments(person)
    assert [(c["id"], c["state"]) for c in listed] == [
        (second["containment_id"], "active"), (first["containment_id"], "released")
    ]  # fmt: skip
    assert listed[1]["ended_by"] == "lead" and listed[1]["end_reason"] == "false positive"


def test_2_a_newer_containment_supersedes_the_timers_of_an_older_one(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    """The same without the early release: the older containment is superseded, its timers cancelled,
    and one release then undoes what both changed, once."""
    cd = lab_clampdown(playbooks=SHORT)
    before = _world(web_lab, person)
    until = _soon(18)
    first = cd.run("contain", person.upn, "-r", "INC-46", "--until", _iso(until), "--wait")
    second = cd.run("contain", person.upn, "-r", "INC-47", "--wait")
    # The second found every account already contained: nothing it did changed anything.
    assert {a["status"] for a in _steps(second).values()} == {"completed"}
    _in_time(until)
    _sleep_past(until, margin=3)
    assert _contained(_world(web_lab, person))
    old = cd.containment(first["containment_id"])
    assert (old["state"], old["superseded_by_id"]) == ("superseded", second["containment_id"])
    assert {(t["status"], t["error"]["code"]) for t in _steps(old, "timer").values()} == {
        ("cancelled", "superseded")
    }

    released = cd.run("release", person.upn, "-r", "both incidents closed", "--wait")
    assert sorted(a["undoes_action_id"] for a in released["actions"]) == sorted(
        a["id"] for a in _steps(first).values()
    )  # the steps that changed something: the first containment's
    assert {a["status"] for a in released["actions"]} == {"completed"}
    assert _world(web_lab, person) == before


def test_3_release_after_the_timed_release_has_nothing_to_release(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    cd = lab_clampdown(playbooks=SHORT)
    before = _world(web_lab, person)
    until = _soon(12)
    run = cd.run("contain", person.upn, "-r", "INC-45", "--until", _iso(until), "--wait")
    _in_time(until)
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


def test_4_approval_targets_match_every_identifier_of_the_resolved_account(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    """The rule names the person by sAMAccountName; the requests name them by UPN. The AD account
    carries it, and so does the Entra ID account synced from it (onPremisesSamAccountName)."""
    cd = lab_clampdown(approvals={"targets": [person.username]})
    rule = f"actions on '{person.username}' need approval"
    disable = cd.run("act", "ad.disable_user", person.upn, "-r", "INC-48")
    assert (disable["status"], disable["approval_reason"]) == ("awaiting_approval", rule)
    suspend = cd.run("act", "entra.suspend_user", person.upn, "-r", "INC-48")
    assert (suspend["status"], suspend["approval_reason"]) == ("awaiting_approval", rule)
    time.sleep(1)
    world = _world(web_lab, person)
    assert not world["ad_uac"] & 2 and world["entra_enabled"]


def test_4_an_approval_target_naming_the_person_holds_every_account_of_the_containment(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    cd = lab_clampdown(playbooks=SHORT, approvals={"targets": [person.username]})
    run = cd.run("contain", person.upn, "-r", "INC-48")
    assert cd.containment(run["containment_id"])["state"] == "awaiting_approval"
    time.sleep(2)  # the worker runs all along
    assert web_lab.okta_status(person.okta_id) == "ACTIVE"  # fails: SUSPENDED, nobody approved
    assert {a["status"] for a in _steps(run).values()} == {"awaiting_approval"}


def test_4_an_undo_or_release_whose_inverse_needs_approval_waits_for_it(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    cd = lab_clampdown(playbooks=SHORT, approvals={"actions": ["okta.unsuspend_user"]})
    rule = "okta.unsuspend_user needs approval"
    suspended = cd.run("act", "okta.suspend_user", person.upn, "-r", "INC-49", "--wait")
    assert suspended["status"] == "completed"
    undo = cd.run("actions", "undo", str(suspended["id"]), "-r", "false positive")
    assert (undo["status"], undo["approval_reason"]) == ("awaiting_approval", rule)
    time.sleep(1)
    assert web_lab.okta_status(person.okta_id) == "SUSPENDED"
    cd.run("actions", "approve", str(undo["id"]), token=cd.second)
    assert _eventually(lambda: web_lab.okta_status(person.okta_id), lambda s: s == "ACTIVE") == "ACTIVE"

    # A containment approved by a second person: its release inherits that approval, except for
    # the rule the approver was never shown (the inverse's own).
    run = cd.run("contain", person.upn, "-r", "INC-50", "--request-approval")
    cd.run("actions", "approve", "--batch", run["batch_id"], token=cd.second)
    assert _contained(_eventually(lambda: _world(web_lab, person), _contained))
    released = cd.run("release", person.upn, "-r", "closed")
    asked = {a["type"]: (a["approval_reason"], a["approved_by"]) for a in released["actions"]}
    assert asked["okta.unsuspend_user"] == (rule, None)
    assert asked["ad.enable_user"] == asked["entra.enable_user"] == (None, "second")  # inherited
    assert _steps(released, "release")["okta.unsuspend_user"]["status"] == "awaiting_approval"
    world = _eventually(lambda: _world(web_lab, person), lambda w: w["entra_enabled"])
    assert not world["ad_uac"] & 2 and world["entra_enabled"] and world["okta"] == "SUSPENDED"
    okta_release = next(a for a in released["actions"] if a["type"] == "okta.unsuspend_user")
    cd.run("actions", "approve", str(okta_release["id"]), token=cd.second)
    assert _eventually(lambda: web_lab.okta_status(person.okta_id), lambda s: s == "ACTIVE") == "ACTIVE"


def test_4_a_timed_undo_whose_inverse_needs_approval_is_approved_with_its_action(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    """The timer cannot ask anyone when it runs: the approval is asked for with the action, and the
    approver is shown the inverse's rule."""
    cd = lab_clampdown(approvals={"actions": ["okta.unsuspend_user"]})
    until = _soon(14)
    asked = cd.run("act", "okta.suspend_user", person.upn, "-r", "INC-51", "--until", _iso(until))
    rule = "okta.unsuspend_user needs approval"
    assert (asked["status"], asked["approval_reason"]) == ("awaiting_approval", rule)
    cd.run("actions", "approve", str(asked["id"]), token=cd.second)
    assert _eventually(lambda: web_lab.okta_status(person.okta_id), lambda s: s == "SUSPENDED") == "SUSPENDED"
    _in_time(until)
    _sleep_past(until)
    assert _eventually(lambda: web_lab.okta_status(person.okta_id), lambda s: s == "ACTIVE") == "ACTIVE"
    [timer] = [a for a in cd.run("actions", "list") if a["undoes_action_id"] == asked["id"]]
    assert timer["status"] == "completed" and timer["approved_by"] is None


def test_5_the_timed_release_of_an_approved_protected_containment_restores_the_account(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    cd = lab_clampdown(playbooks=SHORT, protection={"accounts": [person.upn]})
    before = _world(web_lab, person)
    until = _soon(20)
    run = cd.run("contain", person.upn, "-r", "INC-52", "--until", _iso(until), "--request-approval")
    protection = f"protected account: named protected account '{person.upn}'"
    assert {a["status"] for a in _steps(run).values()} == {"awaiting_approval"}
    assert all(protection in a["approval_rules"] for a in _steps(run).values())
    assert cd.containment(run["containment_id"])["state"] == "awaiting_approval"
    cd.run("actions", "approve", "--batch", run["batch_id"], token=cd.second)
    assert _contained(_eventually(lambda: _world(web_lab, person), _contained))
    _in_time(until)
    assert cd.containment(run["containment_id"])["state"] == "active"

    _sleep_past(until)
    assert _eventually(lambda: _world(web_lab, person), lambda w: w == before) == before
    shown = _eventually(lambda: cd.containment(run["containment_id"]), lambda c: c["state"] == "expired")
    assert shown["state"] == "expired"
    timers = _steps(shown, "timer")
    assert {(t["status"], t["error"]) for t in timers.values()} == {("completed", None)}, timers


def test_6_undo_before_until_runs_now_and_cancels_the_timer(
    web_lab: WebLab, person: ScratchPerson, lab_clampdown: Callable[..., Clampdown]
) -> None:
    cd = lab_clampdown(playbooks=SHORT)
    run = cd.run("contain", person.upn, "-r", "INC-53", "--until", _iso(_soon(3600)), "--wait")
    assert _contained(_world(web_lab, person))
    okta_step = _steps(run)["okta.suspend_user"]
    undo = cd.run("actions", "undo", str(okta_step["id"]), "-r", "Okta was a false positive")
    assert undo["containment_role"] == "undo" and undo["status"] in ("queued", "running", "completed")
    assert _eventually(lambda: web_lab.okta_status(person.okta_id), lambda s: s == "ACTIVE") == "ACTIVE"
    again = cd.run("actions", "undo", str(okta_step["id"]))
    assert again["id"] == undo["id"]  # never a second undo

    shown = cd.containment(run["containment_id"])
    timers = _steps(shown, "timer")
    okta_timer = timers.pop("okta.unsuspend_user")
    assert okta_timer["status"] == "cancelled" and okta_timer["error"]["code"] == "replaced"
    assert okta_timer["error"]["message"] == "replaced by an undo lead asked for now"
    assert {t["status"] for t in timers.values()} == {"queued"}  # the others still wait for until
    assert web_lab.ad_disabled(person.ad_dn)
    assert shown["state"] == "partly_contained"
