"""Finds and builds the configured connectors.

Connector classes are discovered through the `clampdown.connectors` entry-point group (name = the
connector kind), so a new provider package registers itself and nothing here changes. A
`[providers.NAME]` section picks its kind with `kind = "..."` (default: NAME) or names a class
directly with `connector = "package.module:Class"`.

Building also checks, on the classes and before any I/O, that each connector has an `async def`
for every catalog action it will be asked to run, and names every gap at once: a forgotten method
stops start-up instead of failing the first incident that needs it.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, cast

from pydantic import BaseModel, ValidationError

from clampdown.catalog import all_actions
from clampdown.config import Settings, describe_validation_error
from clampdown.connectors.base import Connector
from clampdown.errors import ConfigError

ENTRY_POINT_GROUP = "clampdown.connectors"
_META_KEYS = ("kind", "connector", "enabled")


def available_kinds() -> list[str]:
    """Connector kinds installed in this environment."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def _import_class(spec: str, where: str) -> type[Connector]:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"{where}: connector must look like 'package.module:Class', got '{spec}'")
    try:
        module = importlib.import_module(module_name)
        return cast(type[Connector], getattr(module, attr))
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot load connector '{spec}': {exc}") from None


def connector_class(name: str, section: dict[str, Any]) -> type[Connector]:
    """The class configured for `[providers.NAME]`."""
    where = f"providers.{name}"
    if section.get("connector"):
        return _import_class(str(section["connector"]), where)
    kind = str(section.get("kind") or name)
    for ep in entry_points(group=ENTRY_POINT_GROUP, name=kind):
        return cast(type[Connector], ep.load())
    known = ", ".join(available_kinds()) or "none installed"
    raise ConfigError(f"{where}: unknown connector kind '{kind}' (known: {known})")


def served_provider(cls: type[Connector], settings: BaseModel | None) -> str:
    """The catalog provider a connector built from `settings` serves: its `provider` setting where
    the section chooses it (the memory directory stands in for any provider), else the class's."""
    chosen = getattr(settings, "provider", None)
    return chosen if isinstance(chosen, str) else str(getattr(cls, "provider", ""))


def missing_methods(name: str, cls: type[Connector], settings: BaseModel | None) -> list[str]:
    """Each catalog action `[providers.NAME]` may be asked to run that the class lacks as an
    `async def`, as "action -> method" (plus why, when the attribute exists but is not one).

    The engine routes an action to the section named after its provider, and the console offers
    the actions of the provider the connector serves, so both sets are checked.
    """
    providers = {name, served_provider(cls, settings)}
    gaps = []
    for definition in all_actions():
        if definition.provider not in providers:
            continue
        attribute = getattr(cls, definition.method, None)
        gap = f"{definition.id} -> {definition.method}"
        if attribute is None:
            gaps.append(gap)
        elif not callable(attribute):
            gaps.append(f"{gap} (not callable)")
        elif not inspect.iscoroutinefunction(attribute):
            gaps.append(f"{gap} (not an async def)")
    return gaps


def validate_provider(name: str, section: dict[str, Any]) -> tuple[type[Connector], Any]:
    """The connector class and its validated settings; ConfigError naming every problem, bad
    settings and missing action methods alike."""
    where = f"providers.{name}"
    cls = connector_class(name, section)
    body = {k: v for k, v in section.items() if k not in _META_KEYS}
    problems: list[str] = []
    settings: BaseModel | None = None
    try:
        settings = cls.settings_model.model_validate(body)
    except ValidationError as exc:
        problems += describe_validation_error(exc, where)
    if gaps := missing_methods(name, cls, settings):
        problems.append(f"{where} ({cls.__module__}:{cls.__qualname__}) lacks {', '.join(gaps)}")
    if problems:
        raise ConfigError("; ".join(problems))
    return cls, settings


def configured_providers(settings: Settings) -> dict[str, dict[str, Any]]:
    """The enabled provider sections, by provider name."""
    return {n: s for n, s in settings.providers.items() if s.get("enabled", True) is not False}


def build_connectors(settings: Settings) -> dict[str, Connector]:
    """One connector per enabled provider section; ConfigError naming every bad section.

    Every section is validated before any connector is built, so a bad one refuses start-up
    before anything opens a connection or a file.
    """
    validated: dict[str, tuple[type[Connector], Any]] = {}
    problems: list[str] = []
    for name, section in configured_providers(settings).items():
        try:
            validated[name] = validate_provider(name, section)
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError("; ".join(problems))
    built: dict[str, Connector] = {}
    for name, (cls, provider_settings) in validated.items():
        try:
            built[name] = cls.from_settings(provider_settings)
        except ConfigError as exc:  # e.g. a secret file that cannot be read
            problems.append(exc.message)
    if problems:
        raise ConfigError("; ".join(problems))
    return built
