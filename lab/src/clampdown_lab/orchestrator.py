"""`clampdown lab up|status|down`: starts every lab part, seeds the demo people, writes
DIR/clampdown.toml (ready to serve on SQLite) and DIR/lab.json (URLs, people and their ids)."""

from __future__ import annotations

import json
import os
import secrets
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

import tomli_w

from clampdown_lab.component import LabComponent, LabService
from clampdown_lab.people import DEMO_PEOPLE

ENTRY_POINT_GROUP = "clampdown.lab"
# Start order matters: Entra ID links its users to the AD accounts started first.
ORDER = ("ad", "entra", "okta")


def components() -> list[LabComponent]:
    """The installed lab parts, in start order."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return [cast(LabComponent, found[n].load()()) for n in names]


def _secret_file(lab_dir: Path, name: str) -> Path:
    """A random secret in DIR/name, made once and kept (readable by its owner only)."""
    path = lab_dir / name
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        os.chmod(path, 0o600)
    return path


def _config(lab_dir: Path, services: list[LabService]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database": {"url": "sqlite:///clampdown.db"},
        "server": {"host": "127.0.0.1", "port": 8080},
        "providers": {s.name: s.provider_config for s in services},
    }
    sso = next((s.details["oidc"] for s in services if "oidc" in s.details), None)
    if sso is not None:  # the Okta emulator is the lab's identity provider too
        config["sso"] = sso
        config["server"]["session_secret"] = {"file": str(_secret_file(lab_dir, "session-secret").resolve())}
    # The key that signs audit checkpoints lives beside the database, not in it.
    config["audit"] = {
        "checkpoint_key": {"file": str(_secret_file(lab_dir, "audit-checkpoint-key").resolve())}
    }
    return config


def _lab_json(services: list[LabService]) -> dict[str, Any]:
    people = []
    for person in DEMO_PEOPLE:
        entry: dict[str, Any] = {
            "username": person.username,
            "upn": person.upn,
            "display_name": person.display_name,
        }
        for s in services:
            if person.username in s.people:
                entry[s.name] = s.people[person.username]
        people.append(entry)
    return {
        "services": {s.name: {"url": s.url, **s.details} for s in services},
        "people": people,
    }


def lab_up(lab_dir: Path) -> list[LabService]:
    """Start (or reuse) every lab part and write the config and lab.json into lab_dir."""
    lab_dir = lab_dir.resolve()  # the parts run detached, from another working directory
    lab_dir.mkdir(parents=True, exist_ok=True)
    services: list[LabService] = []
    for component in components():
        service = component.up(lab_dir, DEMO_PEOPLE)
        link = getattr(component, "link", None)
        if callable(link):  # e.g. Entra users carry the objectSid of their AD account
            link(lab_dir, services)
        services.append(service)
    (lab_dir / "clampdown.toml").write_text(tomli_w.dumps(_config(lab_dir, services)), encoding="utf-8")
    lab_json = lab_dir / "lab.json"
    admin = json.loads(lab_json.read_text()).get("admin") if lab_json.exists() else None
    data = _lab_json(services)
    if admin:
        data["admin"] = admin  # ensure_lab_admin decides whether it still works
    lab_json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.chmod(lab_json, 0o600)
    return services


def lab_status(lab_dir: Path) -> dict[str, str]:
    """One line per lab part."""
    lab_dir = lab_dir.resolve()
    return {c.name: c.status(lab_dir) for c in components()}


def lab_down(lab_dir: Path) -> None:
    """Stop every lab part, last started first."""
    lab_dir = lab_dir.resolve()
    for component in reversed(components()):
        component.down(lab_dir)
