"""Guardrail tests run against the lab: the shared Samba DC and this session's emulators."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.lab_config import clampdown, create_user_token, spawn_worker
from tests.web import conftest as console_fixtures
from tests.web.lab import WebLab

PROTECTED = "breakglass.admin@lab.example.test"
# The lab and its scratch people, shared with the console's browser tests.
web_lab = console_fixtures.web_lab
person = console_fixtures.person


@dataclass
class Guarded:
    config: Path
    lead: str  # Global Administrator
    second: str  # another Global Administrator, for four eyes
    reader: str
    worker: subprocess.Popen[str]


def write(path: Path, web_lab: WebLab, **extra: Any) -> Path:
    data = {
        "database": {"url": f"sqlite:///{path.parent / 'clampdown.db'}"},
        "engine": {"poll_interval_seconds": 0.1, "lease_seconds": 10},
        "providers": web_lab.provider_configs(),
        "protection": {"accounts": [PROTECTED]},
        **extra,
    }
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def guarded(web_lab: WebLab, tmp_path: Path) -> Iterator[Guarded]:
    config = write(tmp_path / "clampdown.toml", web_lab, approvals={"playbooks": ["contain-approved"]},
                   playbooks={"contain-approved": {"steps": [{"action": "ad.disable_user"},
                                                             {"action": "okta.suspend_user"}]},
                              "contain": {"steps": [
                                  {"action": "ad.disable_user"},
                                  {"action": "ad.force_password_reset", "after": "ad.disable_user"},
                                  {"action": "entra.suspend_user", "after": "ad.disable_user"},
                                  {"action": "entra.revoke_sessions", "after": "entra.suspend_user"},
                                  {"action": "entra.mark_compromised"},
                                  {"action": "okta.suspend_user"}]}})  # fmt: skip
    assert clampdown(config, "db", "upgrade").returncode == 0
    lead = create_user_token(config, "lead", "Global Administrator")
    second = create_user_token(config, "second", "Global Administrator")
    reader = create_user_token(config, "reader", "Security Reader")
    worker = spawn_worker(config)
    yield Guarded(config, lead, second, reader, worker)
    worker.terminate()
    worker.wait(15)
