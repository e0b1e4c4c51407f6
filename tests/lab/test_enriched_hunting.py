"""Issue 19 on the lab's two directories of each kind, through the real command and a real worker:
DC events that name only a sAMAccountName are joined at ingest to the account's UPN, SID, Entra
object id and Okta id, each forest's accounts in their own forest (LAB's bob.nguyen is not EMEA's
bnguyen); the README's hunt groups by real UPNs; acting on its results reaches the person in AD,
Entra ID and Okta, read back in each."""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from clampdown_lab.component import LabService
from tests.lab.test_many_directories import Scene, _enabled, _ids
from tests.lab_config import clampdown, create_user_token, spawn_worker

pytestmark = pytest.mark.samba

README_HUNT = "IdentityLogonEvents | where ActionType == 'LogonFailed' | summarize count() by AccountUpn"
EMEA_DC = "dc1.emea.example.test"
IDS = "| distinct AccountUpn, AccountSid, AccountEntraObjectId, AccountOktaId"


@pytest.fixture
def scene(lab_with_second: tuple[Path, list[LabService]], tmp_path: Path) -> Iterator[Scene]:
    lab_dir, _ = lab_with_second
    data = tomllib.loads((lab_dir / "clampdown.toml").read_text())
    data["database"] = {"url": f"sqlite:///{tmp_path / 'clampdown.db'}"}
    data["engine"] = {"poll_interval_seconds": 0.1, "lease_seconds": 10}
    data["hunting"] = {"events_path": str(tmp_path / "events.duckdb")}
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    assert clampdown(config, "db", "upgrade").returncode == 0
    token = create_user_token(config, "lead", "Global Administrator")
    people = {p["upn"]: p for p in json.loads((lab_dir / "lab.json").read_text())["people"]}
    worker = spawn_worker(config)
    try:
        yield Scene(config, token, people)
    finally:
        worker.terminate()
        worker.wait(15)


def _emea_day(path: Path) -> Path:
    """Failed logons at EMEA's DC: EMEA's alice.martin (migrated: she kept her LAB UPN) and bnguyen,
    who has a look-alike display name in LAB and nothing else."""
    failures = [("alice.martin", 4), ("bnguyen", 3)]
    lines = []
    for name, count in failures:
        for _ in range(count):
            record = len(lines) + 1
            data = {"TargetUserName": name, "TargetDomainName": "EMEA", "Status": "0xc000006d",
                    "SubStatus": "0xc000006a", "LogonType": "3", "IpAddress": "198.51.100.23"}  # fmt: skip
            winlog = {"channel": "Security", "computer_name": EMEA_DC, "event_id": 4625, "record_id": record}
            stamp = f"2026-12-01T09:00:{record:02d}.000Z"
            lines.append(json.dumps({"@timestamp": stamp, "winlog": {**winlog, "event_data": data}}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ad_sid(person: dict[str, Any], where: str) -> str:
    return str(person[where]["objectSid"])


def _wait_done(scene: Scene, action_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        shown = scene.run("actions", "show", str(action_id))
        if shown["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return dict(shown)
        time.sleep(0.5)


async def test_dc_events_name_the_person_and_acting_on_the_hunt_reaches_every_provider(
    scene: Scene, tmp_path: Path
) -> None:
    day = scene.run("ingest", "lab-day")
    assert day["directories"] == {"ad": day["added"]}, day
    emea = scene.run("ingest", "jsonl", str(_emea_day(tmp_path / "emea.ndjson")))
    assert emea["directories"] == {"emea-ad": 7}, emea

    # The README's hunt: every failure counted against a real UPN, none against an empty one.
    found = scene.run("hunt", README_HUNT + " | order by AccountUpn asc")
    counts = {upn: n for upn, n in found["rows"]}
    lab_people = [p for p in scene.people.values() if "ad" in p]
    expected = {p["upn"]: 1 for p in lab_people}  # the spray: one failure each
    expected["bob.nguyen@lab.example.test"] += 25  # the brute force
    expected["alice.martin@lab.example.test"] += 4  # EMEA's alice is the same person (her UPN, kept)
    expected["bob.nguyen@emea.example.test"] = 3  # EMEA's bnguyen, not LAB's bob
    assert counts == expected

    # Each account joined in its own forest, with its ids in that forest's tenant and org.
    bob, bnguyen = scene.people["bob.nguyen@lab.example.test"], scene.people["bob.nguyen@emea.example.test"]
    lab_bob = scene.run("hunt", f"IdentityLogonEvents | where AccountName == 'bob.nguyen' {IDS}")["rows"]
    assert lab_bob == [
        ["bob.nguyen@lab.example.test", _ad_sid(bob, "ad"), _ids(bob, "entra"), _ids(bob, "okta")]
    ]
    emea_bob = scene.run("hunt", f"IdentityLogonEvents | where AccountName == 'bnguyen' {IDS}")["rows"]
    assert emea_bob == [[
        "bob.nguyen@emea.example.test", _ad_sid(bnguyen, "emea-ad"), _ids(bnguyen, "emea-entra"),
        _ids(bnguyen, "emea-okta"),
    ]]  # fmt: skip
    # Alice's login is in both Okta orgs: her Okta id is not guessed; each forest's SID is its own.
    alice = scene.people["alice.martin@lab.example.test"]
    both = scene.run(
        "hunt", f"IdentityLogonEvents | where AccountName == 'alice.martin' {IDS} | order by AccountSid asc"
    )["rows"]
    assert sorted(both, key=str) == sorted([
        ["alice.martin@lab.example.test", _ad_sid(alice, "ad"), _ids(alice, "entra"), None],
        ["alice.martin@lab.example.test", _ad_sid(alice, "emea-ad"), _ids(alice, "emea-entra"), None],
    ], key=str)  # fmt: skip

    # Acting on the hunt's AccountUpn reaches Grace in AD, Entra ID and Okta.
    grace = scene.people["grace.haddad@lab.example.test"]
    hunt = README_HUNT + " | where AccountUpn == 'grace.haddad@lab.example.test'"
    done = []
    for action, where in (
        ("ad.disable_user", "ad"),
        ("entra.suspend_user", "entra"),
        ("okta.suspend_user", "okta"),
    ):
        acted = scene.run("hunt", hunt, "--act", action, "--column", "AccountUpn", "-r", "spray, INC-19")
        assert acted["targets"] == ["grace.haddad@lab.example.test"] and not acted["refused"], acted
        shown = _wait_done(scene, acted["actions"][0]["id"])
        assert (shown["status"], shown["instance"]) == ("completed", where), shown
        assert await _enabled(scene.config, where, _ids(grace, where)) is False, where
        done.append((shown["id"], where))
    for action_id, where in done:
        undo = scene.run("actions", "undo", str(action_id), "--wait")
        assert undo["status"] == "completed", undo
        assert await _enabled(scene.config, where, _ids(grace, where)) is True, where
