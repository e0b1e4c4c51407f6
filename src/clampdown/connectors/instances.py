"""Provider instances: the configured directories, several per kind.

Each `[providers.NAME]` section is one directory (one AD forest or domain, one Entra tenant, one
Okta org) and `NAME` is its instance name; its kind (`ad`, `entra`, `okta`) is what the catalog's
action types name. The connectors are held by instance name. An action records the instance it
runs against; one recorded before instances existed, or an account read without one, names the
directory after its kind (`[providers.ad]`), and while only one directory of that kind is
configured it runs there whatever its section is called now.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from clampdown.connectors.base import Connector
from clampdown.errors import InvalidInput
from clampdown.model import Account

# Each kind's name in words: short (in messages: "AD (emea-ad) objectSid") and long (the console).
_TITLES = {"ad": ("AD", "Active Directory"), "entra": ("Entra", "Entra ID"), "okta": ("Okta", "Okta")}


def directory_title(kind: str, instance: str | None = None, *, long: bool = False) -> str:
    """'AD', or 'AD (emea-ad)' for a directory not named after its kind; `long`: 'Active Directory'.
    An unknown kind keeps its name."""
    short_title, long_title = _TITLES.get(kind, (kind, kind))
    title = long_title if long else short_title
    return f"{title} ({instance})" if instance and instance != kind else title


def instances_of(connectors: Mapping[str, Connector], kind: str) -> list[str]:
    """The instance names of the configured directories of `kind`, in configuration order (a
    connector that does not say its kind is of the kind its section is named after)."""
    return [name for name, connector in connectors.items() if getattr(connector, "provider", name) == kind]


def find_instance(connectors: Mapping[str, Connector], kind: str, instance: str | None) -> str | None:
    """The instance an action of `kind` recorded as `instance` runs against: that one if configured
    (and of that kind), else the only directory of the kind; None if there is none to choose."""
    names = instances_of(connectors, kind)
    if instance in names:
        return instance
    if instance is not None and instance in connectors:
        return None  # a directory of another kind: never a silent substitute
    return names[0] if len(names) == 1 else None


def require_instance(connectors: Mapping[str, Connector], kind: str, instance: str | None, what: str) -> str:
    """`find_instance`, or InvalidInput saying what is configured and what to do."""
    found = find_instance(connectors, kind, instance)
    if found is not None:
        return found
    names = instances_of(connectors, kind)
    if not names:
        raise InvalidInput(
            f"provider '{kind}' is not configured: add [providers.{kind}] (or a section with "
            f'kind = "{kind}") to the config to use {what}'
        )
    if instance is not None:
        configured = ", ".join(names)
        raise InvalidInput(f"'{instance}' is not a configured {kind} directory; configured: {configured}")
    raise InvalidInput(
        f"{what}: {len(names)} {kind} directories are configured ({', '.join(names)}); name the one "
        "to act on (instance)"
    )


def stamped(account: Account, instance: str) -> Account:
    """The account as found in directory `instance`."""
    return account if account.instance == instance else replace(account, instance=instance)
