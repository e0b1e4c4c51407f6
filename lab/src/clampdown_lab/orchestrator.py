"""`clampdown lab up|status|down`: starts every lab part, seeds the demo people, writes
DIR/clampdown.toml (ready to serve on SQLite) and DIR/lab.json (URLs, people and their ids).

With `second=True` (`clampdown lab up --second`) it also starts a second directory of each kind,
the EMEA domain's: a Samba AD DC at 127.0.0.2, a Graph tenant and an Okta org, written as
[providers.emea-ad], [providers.emea-entra] and [providers.emea-okta] with their `kind`."""

from __future__ import annotations

import json
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

import tomli_w

from clampdown_lab.component import LabComponent, LabService, secret_file
from clampdown_lab.people import DEMO_PEOPLE, EMEA, EMEA_PEOPLE, MIGRATED_FROM_LAB, DemoPerson
from clampdown_lab.signals import signals_config

ENTRY_POINT_GROUP = "clampdown.lab"
# Start order matters: Entra ID links its users to the AD accounts started first.
ORDER = ("ad", "entra", "okta")
LAB_PORT = 8080  # where `clampdown serve` listens on the lab's config


def components() -> list[LabComponent]:
    """The installed lab parts, in start order."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    names = [n for n in ORDER if n in found] + sorted(n for n in found if n not in ORDER)
    return [cast(LabComponent, found[n].load()()) for n in names]


def second_components() -> list[LabComponent]:
    """The second domain's parts (EMEA): the same kinds as the first, built for it, in start order."""
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return [cast(LabComponent, found[n].load()(domain=EMEA)) for n in ORDER if n in found]


def _second_started(lab_dir: Path) -> bool:
    """Whether `lab up --second` ever ran in lab_dir (the EMEA parts then have their folders)."""
    return any((lab_dir / EMEA.folder(part)).exists() for part in ("samba", "entra", "okta"))


def _config(lab_dir: Path, services: list[LabService]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database": {"url": "sqlite:///clampdown.db"},
        "server": {"host": "127.0.0.1", "port": LAB_PORT},
        "providers": {s.name: s.provider_config for s in services},
    }
    okta = next((s for s in services if s.name == "okta"), None)
    if okta is not None:  # Shared Signals both ways with the lab's Okta org
        config["ssf"] = signals_config(lab_dir, okta, f"http://127.0.0.1:{LAB_PORT}")
    sso = next((s.details["oidc"] for s in services if "oidc" in s.details), None)
    if sso is not None:  # the Okta emulator is the lab's identity provider too
        config["sso"] = sso
        config["server"]["session_secret"] = {"file": str(secret_file(lab_dir, "session-secret").resolve())}
    # The key that signs audit checkpoints lives beside the database, not in it.
    config["audit"] = {
        "checkpoint_key": {"file": str(secret_file(lab_dir, "audit-checkpoint-key").resolve())}
    }
    return config


def _person_entry(person: DemoPerson, services: list[LabService], username: str | None) -> dict[str, Any]:
    """A person's lab.json entry: names, then their ids in each service they have an account in
    (`username` there; the first domain's services use the person's own)."""
    entry: dict[str, Any] = {
        "username": person.username,
        "upn": person.upn,
        "display_name": person.display_name,
    }
    for s in services:
        if username in s.people:
            entry[s.name] = s.people[username]
    return entry


def _lab_json(services: list[LabService]) -> dict[str, Any]:
    second_names = {EMEA.provider(kind) for kind in ORDER}
    first = [s for s in services if s.name not in second_names]
    second = [s for s in services if s.name in second_names]
    migrated = {source: username for username, source in MIGRATED_FROM_LAB.items()}
    people = []
    for person in DEMO_PEOPLE:  # the first domain's people, with their migrated EMEA accounts
        entry = _person_entry(person, first, person.username)
        entry.update(_person_entry(person, second, migrated.get(person.username)))
        people.append(entry)
    if second:  # EMEA's own people, the look-alike among them
        people += [
            _person_entry(p, second, p.username) for p in EMEA_PEOPLE if p.username not in MIGRATED_FROM_LAB
        ]
    return {
        "services": {s.name: {"url": s.url, **s.details} for s in services},
        "people": people,
    }


def _start(lab_dir: Path, component: LabComponent, people: tuple[DemoPerson, ...],
           services: list[LabService]) -> None:  # fmt: skip
    """Start one part and add its service to `services`, linked to those started before it."""
    services.append(component.up(lab_dir, people))
    link = getattr(component, "link", None)
    if callable(link):  # e.g. Entra users carry the objectSid of their AD account
        linked = link(lab_dir, services)
        if isinstance(linked, LabService):  # the part's service, updated by the link
            services[-1] = linked


def lab_up(lab_dir: Path, second: bool = False) -> list[LabService]:
    """Start (or reuse) every lab part and write the config and lab.json into lab_dir; with
    `second`, the second domain's parts too (EMEA: emea-ad, emea-entra, emea-okta)."""
    lab_dir = lab_dir.resolve()  # the parts run detached, from another working directory
    lab_dir.mkdir(parents=True, exist_ok=True)
    services: list[LabService] = []
    for component in components():
        _start(lab_dir, component, DEMO_PEOPLE, services)
    for component in second_components() if second else []:
        _start(lab_dir, component, EMEA_PEOPLE, services)
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
    """One line per lab part (the second domain's too, once started in lab_dir)."""
    lab_dir = lab_dir.resolve()
    parts = components() + (second_components() if _second_started(lab_dir) else [])
    return {c.name: c.status(lab_dir) for c in parts}


def lab_stopped(lab_dir: Path) -> list[str]:
    """The lab parts (the second domain's too, once started in lab_dir) that do not run now."""
    lab_dir = lab_dir.resolve()
    parts = components() + (second_components() if _second_started(lab_dir) else [])
    return [c.name for c in parts if not c.running(lab_dir)]


def lab_down(lab_dir: Path) -> None:
    """Stop every lab part, last started first (the second domain's too)."""
    lab_dir = lab_dir.resolve()
    parts = components() + (second_components() if _second_started(lab_dir) else [])
    for component in reversed(parts):
        component.down(lab_dir)
