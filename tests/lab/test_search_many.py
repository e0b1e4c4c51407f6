"""People search on the lab's two directories of each kind (issue 19), through the real command:
the migrated people are one person across both forests, tenants and orgs (sIDHistory, UPN, login),
and EMEA's Bob Nguyen, who shares only a display name with LAB's, is never merged with him."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from clampdown_lab.component import LabService
from tests.lab_config import clampdown, create_user_token

pytestmark = pytest.mark.samba

EVERYWHERE = {"ad", "entra", "okta", "emea-ad", "emea-entra", "emea-okta"}


@pytest.fixture
def search(lab_with_second: tuple[Path, list[LabService]], tmp_path: Path) -> Any:
    lab_dir, _ = lab_with_second
    data = tomllib.loads((lab_dir / "clampdown.toml").read_text())
    data["database"] = {"url": f"sqlite:///{tmp_path / 'clampdown.db'}"}
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    assert clampdown(config, "db", "upgrade").returncode == 0
    token = create_user_token(config, "lead", "Global Administrator")

    def run(text: str) -> dict[str, Any]:
        done = clampdown(config, "users", "search", text, "--json", token=token)
        assert done.returncode == 0, done.stdout + done.stderr
        found: dict[str, Any] = json.loads(done.stdout)
        assert sorted(found["searched"]) == sorted(EVERYWHERE) and not found["still_answering"], found
        return found

    return run


def _where(person: dict[str, Any]) -> set[str]:
    return {a["account"]["instance"] for a in person["accounts"]}


def test_the_migrated_and_the_look_alike(search: Any) -> None:
    alice = search("mart")["people"]
    assert [(p["title"], _where(p)) for p in alice] == [("Alice Martin", EVERYWHERE)]
    # Heidi took an EMEA UPN: only the sIDHistory of her EMEA account links the two halves.
    heidi = search("schmi")["people"]
    assert [(p["title"], _where(p)) for p in heidi] == [("Heidi Schmidt", EVERYWHERE)]
    bobs = search("nguyen")["people"]
    assert sorted(p["reference"] for p in bobs) == [
        "bob.nguyen@emea.example.test",
        "bob.nguyen@lab.example.test",
    ]
    assert {frozenset(_where(p)) for p in bobs} == {
        frozenset({"ad", "entra", "okta"}), frozenset({"emea-ad", "emea-entra", "emea-okta"})
    }  # fmt: skip
