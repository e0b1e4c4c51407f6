"""Permissions and the built-in roles, as in Microsoft Defender XDR's unified RBAC."""

from __future__ import annotations

RESPONSE_MANAGE = "response:manage"  # take remediation actions
RESPONSE_READ = "response:read"  # see the action center
HUNTING_READ = "hunting:read"  # run hunting queries
HUNTING_MANAGE = "hunting:manage"  # save queries, detection rules
SETTINGS_MANAGE = "settings:manage"  # users, tokens, roles, configuration
SIGNALS_STREAMS = "signals:streams"  # manage its own Shared Signals streams (a receiver of Clampdown's SETs)

ALL_PERMISSIONS: frozenset[str] = frozenset(
    {RESPONSE_MANAGE, RESPONSE_READ, HUNTING_READ, HUNTING_MANAGE, SETTINGS_MANAGE, SIGNALS_STREAMS}
)


def listed_scope(scope: frozenset[str] | None) -> list[str] | None:
    """A scope (the directories a user's roles are limited to; None: every one) as stored and shown."""
    return sorted(scope) if scope is not None else None


GLOBAL_ADMINISTRATOR = "Global Administrator"
SECURITY_ADMINISTRATOR = "Security Administrator"
SECURITY_OPERATOR = "Security Operator"
SECURITY_READER = "Security Reader"

# The permissions each built-in role grants by itself. Some actions also name roles directly
# (the seed's table): Security Operator may suspend in Okta without holding response:manage.
BUILTIN_ROLES: dict[str, frozenset[str]] = {
    GLOBAL_ADMINISTRATOR: ALL_PERMISSIONS,
    SECURITY_ADMINISTRATOR: frozenset(
        {RESPONSE_MANAGE, RESPONSE_READ, HUNTING_READ, HUNTING_MANAGE, SETTINGS_MANAGE, SIGNALS_STREAMS}
    ),
    SECURITY_OPERATOR: frozenset({RESPONSE_READ, HUNTING_READ, HUNTING_MANAGE}),
    SECURITY_READER: frozenset({RESPONSE_READ, HUNTING_READ}),
}
