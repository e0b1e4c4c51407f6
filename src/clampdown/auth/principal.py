"""The signed-in caller and the one function that decides what they may do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from clampdown.catalog import ActionDefinition
from clampdown.errors import Forbidden
from clampdown.permissions import BUILTIN_ROLES


@dataclass(frozen=True)
class Principal:
    """A user as far as access is concerned: their roles and the permissions those grant."""

    username: str
    roles: frozenset[str]
    permissions: frozenset[str]
    channel: str = "api"  # api, cli or console: recorded with every decision
    # The directories (provider sections) the user's role assignments are limited to; None: all.
    scope: frozenset[str] | None = None

    @classmethod
    def from_roles(
        cls,
        username: str,
        roles: frozenset[str],
        custom_roles: Mapping[str, frozenset[str]],
        channel: str = "api",
        scope: frozenset[str] | None = None,
    ) -> Principal:
        """Effective permissions: the union over built-in and custom roles."""
        granted: set[str] = set()
        for role in roles:
            granted |= BUILTIN_ROLES.get(role, custom_roles.get(role, frozenset()))
        return cls(username, roles, frozenset(granted), channel, scope)

    @property
    def scoped(self) -> bool:
        """True when the user sees and acts on some directories only."""
        return self.scope is not None

    def sees(self, instance: str | None) -> bool:
        """Whether the user may see and act on what lives in directory `instance`. What belongs to
        no directory (None) is seen by unscoped users only."""
        return self.scope is None or (instance is not None and instance in self.scope)

    def may_run(self, definition: ActionDefinition) -> bool:
        """Any role the action names, or any permission it names, is enough."""
        return bool(self.roles & definition.roles or self.permissions & definition.permissions)

    def has(self, permission: str) -> bool:
        return permission in self.permissions


class PermissionDenied(Forbidden):
    """The caller lacks a right; `missing` says which one would be enough."""

    code = "permission_denied"

    def __init__(self, message: str, missing: str) -> None:
        super().__init__(message)
        self.missing = missing


def requirement_text(definition: ActionDefinition) -> str:
    """What would allow an action, in words: 'permission response:manage or role Global Administrator'."""
    parts = [f"permission {p}" for p in sorted(definition.permissions)]
    if definition.roles:
        parts.append("role " + " or ".join(sorted(definition.roles)))
    return " or ".join(parts)


def require_action(principal: Principal, definition: ActionDefinition) -> None:
    """PermissionDenied naming what is missing, unless the principal may run the action."""
    if not principal.may_run(definition):
        missing = requirement_text(definition)
        raise PermissionDenied(f"{principal.username} may not run {definition.id}: needs {missing}", missing)


def scope_words(scope: frozenset[str] | None) -> str:
    """'directories emea-ad, emea-okta', or 'every directory'."""
    return "every directory" if scope is None else "directories " + ", ".join(sorted(scope))


def require_unscoped(principal: Principal, what: str) -> None:
    """PermissionDenied unless the principal's access covers every directory: `what` spans them all."""
    if principal.scope is not None:
        raise PermissionDenied(
            f"{principal.username} may not {what}: it covers every directory and their access is "
            f"limited to {scope_words(principal.scope)}",
            "access to every directory",
        )


def require_permission(principal: Principal, permission: str, what: str) -> None:
    """PermissionDenied unless the principal holds `permission`."""
    if not principal.has(permission):
        raise PermissionDenied(
            f"{principal.username} may not {what}: needs permission {permission}", f"permission {permission}"
        )
