"""Issue 17 end to end on the lab's two directories of each kind, through the real command and a
real worker: an action routed to the directory that holds the account and read back there; a
reference held by two forests refused until one is named; the migrated person contained in both
forests, both tenants and both orgs, and released; the look-alike never merged."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from clampdown.config import load_settings
from clampdown.connectors.base import Connector
from clampdown.connectors.registry import build_connectors
from clampdown_lab.component import LabService
from tests.lab_config import clampdown, create_user_token, spawn_worker

pytestmark = pytest.mark.samba

EVERYWHERE = ("ad", "entra", "okta", "emea-ad", "emea-entra", "emea-okta")
CONTAIN = {"steps": [{"action": "ad.disable_user"},
                     {"action": "entra.suspend_user", "after": "ad.disable_user"},
                     {"action": "okta.suspend_user"}]}  # fmt: skip


class Scene:
    def __init__(self, config: Path, token: str, people: dict[str, Any]) -> None:
        self.config, self.token, self.people = config, token, people

    def run(self, *args: str, ok: bool = True) -> Any:
        done = clampdown(self.config, *args, "--json", token=self.token)
        if ok:
            assert done.returncode == 0, f"clampdown {' '.join(args)}: {done.stdout}{done.stderr}"
            return json.loads(done.stdout)
        assert done.returncode != 0, done.stdout
        return done.stdout + done.stderr


@pytest.fixture
def scene(lab_with_second: tuple[Path, list[LabService]], tmp_path: Path) -> Iterator[Scene]:
    lab_dir, _ = lab_with_second
    data = tomllib.loads((lab_dir / "clampdown.toml").read_text())
    data["database"] = {"url": f"sqlite:///{tmp_path / 'clampdown.db'}"}
    data["engine"] = {"poll_interval_seconds": 0.1, "lease_seconds": 10}
    data["playbooks"] = {"contain": CONTAIN}
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


async def _enabled(config: Path, where: str, account_id: str) -> bool | None:
    """The account's state read in its own directory (LDAP on that DC, the tenant's Graph, the org)."""
    connectors: dict[str, Connector] = build_connectors(load_settings(config))
    try:
        connector = connectors[where]
        return (await connector.read_state(await connector.resolve_user(account_id))).enabled
    finally:
        for c in connectors.values():
            await c.aclose()


def _ids(person: dict[str, Any], where: str) -> str:
    ids = person[where]
    return str(ids.get("objectGUID") or ids["id"])


async def test_one_clampdown_acts_in_the_right_directory_of_each_kind(scene: Scene) -> None:
    lena = scene.people["lena.fischer@emea.example.test"]
    done = scene.run("act", "ad.disable_user", "lena.fischer@emea.example.test", "-r", "INC-17", "--wait")
    assert done["status"] == "completed" and done["instance"] == "emea-ad", done
    assert done["account"]["instance"] == "emea-ad"
    assert await _enabled(scene.config, "emea-ad", _ids(lena, "emea-ad")) is False
    undo = scene.run("actions", "undo", str(done["id"]), "--wait")
    assert undo["status"] == "completed" and undo["instance"] == "emea-ad"
    assert await _enabled(scene.config, "emea-ad", _ids(lena, "emea-ad")) is True
    listed = scene.run("actions", "list", "--instance", "emea-ad")
    assert sorted(a["id"] for a in listed) == sorted([done["id"], undo["id"]])
    assert scene.run("actions", "list", "--instance", "ad") == []

    # heidi.schmidt is an account name in both forests (she was migrated): one action must say where.
    refused = scene.run("act", "ad.disable_user", "heidi.schmidt", "-r", "INC-17", ok=False)
    assert "names accounts in 2 ad directories" in refused and "ad:" in refused and "emea-ad:" in refused

    # Each forest's action account is checked in its own forest.
    doctor = clampdown(
        scene.config, "doctor", "ad", "--instance", "emea-ad", "--ou", "OU=Managed,DC=emea,DC=example,DC=test"
    )
    assert doctor.returncode == 0 and "OU=Managed,DC=emea" in doctor.stdout, doctor.stdout + doctor.stderr
    both = clampdown(scene.config, "doctor", "ad", "--user", "heidi.schmidt")
    assert "[providers.ad]" in both.stdout and "[providers.emea-ad]" in both.stdout, both.stdout + both.stderr
    wrong = clampdown(scene.config, "doctor", "ad", "--instance", "emea-okta")
    assert (
        wrong.returncode == 4
        and "'emea-okta' is not a configured AD directory" in wrong.stderr + wrong.stdout
    )

    # The look-alike: the same display name, another person.
    dry = scene.run("contain", "bob.nguyen@lab.example.test", "-r", "INC-17", "--dry-run")
    assert {step["provider"] for step in dry["plan"]} == {"ad", "entra", "okta"}
    assert all("emea" not in (step["account"] or "") for step in dry["plan"]), dry["plan"]


async def test_the_migrated_person_is_contained_everywhere_and_released(scene: Scene) -> None:
    heidi = scene.people["heidi.schmidt@lab.example.test"]
    assert set(EVERYWHERE) <= heidi.keys(), heidi
    run = scene.run("contain", "heidi.schmidt@lab.example.test", "-r", "INC-17 phished", "--wait")
    placed = sorted((a["type"], a["instance"]) for a in run["actions"])
    assert placed == sorted([
        ("ad.disable_user", "ad"), ("ad.disable_user", "emea-ad"),
        ("entra.suspend_user", "entra"), ("entra.suspend_user", "emea-entra"),
        ("okta.suspend_user", "okta"), ("okta.suspend_user", "emea-okta"),
    ]), run  # fmt: skip
    assert all(a["status"] == "completed" for a in run["actions"]), run["actions"]
    for where in EVERYWHERE:
        assert await _enabled(scene.config, where, _ids(heidi, where)) is False, where
    released = scene.run("release", "heidi.schmidt@lab.example.test", "-r", "INC-17 closed", "--wait")
    assert sorted(a["instance"] for a in released["actions"]) == sorted(EVERYWHERE)
    for where in EVERYWHERE:
        assert await _enabled(scene.config, where, _ids(heidi, where)) is True, where


async def test_an_analyst_of_emea_contains_in_emea_only_and_cannot_release_a_wider_hold(scene: Scene) -> None:
    """Scoped access on the lab: an analyst whose roles hold in the EMEA directories contains the
    migrated person there only (read back at the EMEA DC, tenant and org; CORP's untouched), never
    sees CORP's actions, and may not release the containment a lead then places everywhere."""
    heidi = scene.people["heidi.schmidt@lab.example.test"]
    emea = ("emea-ad", "emea-entra", "emea-okta")
    made = clampdown(
        scene.config, "users", "create", "lea", "--role", "Global Administrator",
        *(a for d in emea for a in ("--directory", d)),
    )  # fmt: skip
    assert made.returncode == 0 and "directories emea-ad, emea-entra, emea-okta" in made.stdout, made.stderr
    issued = clampdown(scene.config, "tokens", "create", "--user", "lea")
    lea = Scene(scene.config, issued.stdout.strip(), scene.people)

    run = lea.run("contain", "heidi.schmidt@emea.example.test", "-r", "INC-17 EMEA", "--wait")
    assert sorted(a["instance"] for a in run["actions"]) == sorted(emea), run
    assert all(a["status"] == "completed" for a in run["actions"]), run["actions"]
    for where in EVERYWHERE:
        assert await _enabled(scene.config, where, _ids(heidi, where)) is (where not in emea), where
    # CORP's own actions are not lea's to see; a reference only CORP knows is no one to her.
    corp = scene.run("act", "okta.suspend_user", "bob.nguyen@lab.example.test", "-r", "INC-17 CORP", "--wait")
    assert corp["instance"] == "okta"
    assert {a["instance"] for a in lea.run("actions", "list")} <= set(emea)
    assert "no action with id" in lea.run("actions", "show", str(corp["id"]), ok=False)
    assert "no user" in lea.run("contain", "bob.nguyen@lab.example.test", "-r", "x", ok=False)
    assert scene.run("actions", "undo", str(corp["id"]), "--wait")["status"] == "completed"

    # The lead contains her everywhere; the EMEA analyst may not release that.
    everywhere = scene.run("contain", "heidi.schmidt@lab.example.test", "-r", "INC-17 all", "--wait")
    assert {a["instance"] for a in everywhere["actions"]} == set(EVERYWHERE), everywhere
    refused = lea.run("release", "heidi.schmidt@emea.example.test", "-r", "done", ok=False)
    assert "reaches directories outside" in refused, refused
    # She sees her own containment (now taken over), never the lead's: it reaches CORP.
    assert [c["id"] for c in lea.run("containments", "list")] == [run["containment_id"]]
    released = scene.run("release", "heidi.schmidt@lab.example.test", "-r", "INC-17 closed", "--wait")
    assert all(a["status"] == "completed" for a in released["actions"]), released["actions"]
    for where in EVERYWHERE:
        assert await _enabled(scene.config, where, _ids(heidi, where)) is True, where
