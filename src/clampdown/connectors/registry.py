"""Finds and builds the configured connectors.

Connector classes are discovered through the `clampdown.connectors` entry-point group (name = the
connector kind), so a new provider package registers itself and nothing here changes. A
`[providers.NAME]` section picks its kind with `kind = "..."` (default: NAME) or names a class
directly with `connector = "package.module:Class"`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, cast

from pydantic import ValidationError

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


def validate_provider(name: str, section: dict[str, Any]) -> tuple[type[Connector], Any]:
    """The connector class and its validated settings; ConfigError naming every problem."""
    cls = connector_class(name, section)
    body = {k: v for k, v in section.items() if k not in _META_KEYS}
    try:
        return cls, cls.settings_model.model_validate(body)
    except ValidationError as exc:
        raise ConfigError("; ".join(describe_validation_error(exc, f"providers.{name}"))) from None


def configured_providers(settings: Settings) -> dict[str, dict[str, Any]]:
    """The enabled provider sections, by provider name."""
    return {n: s for n, s in settings.providers.items() if s.get("enabled", True) is not False}


def build_connectors(settings: Settings) -> dict[str, Connector]:
    """One connector per enabled provider section; ConfigError naming every bad section."""
    built: dict[str, Connector] = {}
    problems: list[str] = []
    for name, section in configured_providers(settings).items():
        try:
            cls, provider_settings = validate_provider(name, section)
            built[name] = cls.from_settings(provider_settings)
        except ConfigError as exc:
            problems.append(exc.message)
    if problems:
        raise ConfigError("; ".join(problems))
    return built
