"""Residual access in Entra ID: what a contained user may still use, and until when.

Four kinds, read in one `$batch` (the user, its authentication methods, its devices) plus the
tenant's token lifetime policies (read once per few minutes):

- access_tokens: a token issued just before the cut (the earliest suspend or revoke in force)
  lives its whole lifetime in apps without Continuous Access Evaluation. The lifetime is the
  organization default token lifetime policy's AccessTokenLifetime (or a longer one assigned to
  some apps), else Entra ID's documented default, a random 60-90 minutes: 90 is the bound.
- refresh_tokens: ended by entra.revoke_sessions. A suspend alone makes Entra ID refuse them
  while the account stays disabled, which is "ended" now, so the status says ENDED; but they
  were never invalidated, so the detail says they work again if the account is enabled (a
  release, or a directory sync from AD) before a revoke. An account found enabled again is
  REMAINS: the suspend is no longer in force whatever `applied` says.
- auth_methods: every method still registered (the password included).
- devices: every enabled device registered to the user (each can hold a primary refresh token).

A kind whose read the app has no permission for is UNKNOWN with the permission to grant; any
other failed read raises, as ResidualAccessReader says.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clampdown.clock import Clock
from clampdown.connectors.entra.client import GraphClient, GraphReply, SubRequest, object_path
from clampdown.connectors.entra.eviction import PASSWORD_TYPE, Eviction
from clampdown.connectors.refreshed import Refreshed
from clampdown.errors import ProviderError
from clampdown.model import Account, ResidualAccess, ResidualStatus

ErrorOf = Callable[[GraphReply, str, str], ProviderError]

POLICIES = "/policies/tokenLifetimePolicies"
POLICY_PERMISSION = "Policy.Read.All"
# Entra ID gives an access token a random lifetime of 60 to 90 minutes when no policy sets one.
DEFAULT_ACCESS_TOKEN_LIFETIME = timedelta(minutes=90)
POLICY_CACHE_SECONDS = 300.0
CAE_APPS = "Exchange Online, SharePoint Online, Teams, Microsoft Graph"
USER_SELECT = "id,accountEnabled,onPremisesSyncEnabled,signInSessionsValidFromDateTime"
SUSPEND, REVOKE = "entra.suspend_user", "entra.revoke_sessions"
REMOVE_METHODS, DISABLE_DEVICES = "entra.remove_auth_methods", "entra.disable_devices"
FORCE_PASSWORD = "entra.force_password_reset"
# A .NET TimeSpan as token lifetime policies write it: [d.]hh:mm:ss[.fffffff].
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?")


def _timespan(text: str) -> timedelta | None:
    found = _TIMESPAN.fullmatch(text.strip())
    if found is None:
        return None
    days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def access_token_lifetime(policy: Mapping[str, Any]) -> timedelta | None:
    """The AccessTokenLifetime a tokenLifetimePolicy's `definition` sets; None if it sets none
    (or says it in a form this does not read)."""
    for text in policy.get("definition") or []:
        try:
            body = json.loads(str(text)).get("TokenLifetimePolicy") or {}
        except (ValueError, AttributeError):
            continue
        if isinstance(body, dict) and body.get("AccessTokenLifetime") is not None:
            return _timespan(str(body["AccessTokenLifetime"]))
    return None


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:g} min"


def _at(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class TokenLifetime:
    """The longest an access token of the tenant lives, and where that figure comes from."""

    lifetime: timedelta
    source: str  # for people: which policy, or the default and why


class TokenLifetimes:
    """The tenant's access-token lifetime, read from its token lifetime policies."""

    def __init__(self, eviction: Eviction, error: ErrorOf, client_id: str) -> None:
        self.eviction, self.error, self.client_id = eviction, error, client_id

    async def read(self) -> TokenLifetime:
        bound = _minutes(DEFAULT_ACCESS_TOKEN_LIFETIME)
        default = f"Entra ID's default, a random 60-90 min, {bound} taken as the bound"
        reply = await self.eviction.graph.send("GET", POLICIES)
        if reply.status == 403:
            return TokenLifetime(
                DEFAULT_ACCESS_TOKEN_LIFETIME,
                f"{default}: the token lifetime policies could not be read, the app registration "
                f"{self.client_id} needs the application permission {POLICY_PERMISSION}",
            )
        if not reply.ok:
            raise self.error(reply, "read_token_lifetime_policies", "the token lifetime policies")
        policies = await self.eviction.collection(reply)
        organization = next((p for p in policies if p.get("isOrganizationDefault")), None)
        found = access_token_lifetime(organization) if organization is not None else None
        if organization is not None and found is not None:
            best = TokenLifetime(
                found, f"organization default token lifetime policy '{organization.get('displayName')}'"
            )
        elif organization is not None:
            best = TokenLifetime(
                DEFAULT_ACCESS_TOKEN_LIFETIME, f"{default}: the organization default policy sets none"
            )
        else:
            best = TokenLifetime(
                DEFAULT_ACCESS_TOKEN_LIFETIME, f"{default}: no organization default token lifetime policy"
            )
        # A policy assigned to some apps overrides the default for them: the bound is the longest.
        for policy in policies:
            lifetime = access_token_lifetime(policy)
            if policy is not organization and lifetime is not None and lifetime > best.lifetime:
                best = TokenLifetime(
                    lifetime,
                    f"{best.source}; policy '{policy.get('displayName')}', assigned to some apps, "
                    f"allows {_minutes(lifetime)}, taken as the bound",
                )
        return best


class Residual:
    """The residual access of users of one Entra connector (its Graph client and error mapping)."""

    def __init__(
        self, graph: GraphClient, eviction: Eviction, error: ErrorOf, client_id: str, clock: Clock
    ) -> None:
        self.graph, self.eviction, self.error, self.clock = graph, eviction, error, clock
        self.lifetimes = Refreshed(TokenLifetimes(eviction, error, client_id).read, POLICY_CACHE_SECONDS)

    async def read(self, account: Account, applied: Mapping[str, datetime]) -> list[ResidualAccess]:
        """Each kind of access `account` may still hold, given the Entra actions `applied`."""
        applied = {k: _utc(v) for k, v in applied.items()}
        user_read = SubRequest("GET", object_path(account.id, f"?$select={USER_SELECT}"))
        (user, methods, devices), lifetime = await asyncio.gather(
            self.graph.run_many(
                [user_read, self.eviction.methods_request(account), self.eviction.devices_request(account)]
            ),
            self.lifetimes.get(),
        )
        if not user.ok:
            raise self.error(user, "read_user", account.name)
        return [
            self._access_tokens(account, user.body, applied, lifetime, self.clock.now()),
            self._refresh_tokens(account, user.body, applied),
            await self._listed(account, methods, "read_auth_methods", "auth_methods", applied, self._methods),
            await self._listed(account, devices, "read_devices", "devices", applied, self._devices),
        ]

    def _record(
        self, account: Account, kind: str, status: ResidualStatus, detail: str, **more: Any
    ) -> ResidualAccess:
        return ResidualAccess("entra", account.name, kind, status, detail, **more)

    # -- tokens ------------------------------------------------------------------------------
    @staticmethod
    def _cut(user: Mapping[str, Any], applied: Mapping[str, datetime]) -> datetime | None:
        """When new tokens stopped being issued: the revoke, or the suspend while it holds."""
        cuts = [applied[REVOKE]] if REVOKE in applied else []
        if SUSPEND in applied and not user.get("accountEnabled"):
            cuts.append(applied[SUSPEND])
        return min(cuts, default=None)

    def _access_tokens(
        self,
        account: Account,
        user: Mapping[str, Any],
        applied: Mapping[str, datetime],
        lifetime: TokenLifetime,
        now: datetime,
    ) -> ResidualAccess:
        """UNTIL the cut plus the lifetime (ENDED once that passed); REMAINS without a cut."""
        cut = self._cut(user, applied)
        if cut is None:
            if SUSPEND in applied:
                detail = (
                    f"entra.suspend_user ran at {_at(applied[SUSPEND])} but the account is enabled again "
                    "and its sessions were never revoked: new tokens can be issued"
                )
            else:
                detail = "sign-in not blocked, sessions not revoked: new tokens can be issued"
            return self._record(account, "access_tokens", ResidualStatus.REMAINS, detail)
        until = cut + lifetime.lifetime
        ended = until <= now
        valid = f"expired by {_at(until)} at the latest" if ended else f"stay valid until {_at(until)}"
        detail = (
            f"access tokens issued before {_at(cut)} {valid} in apps without Continuous Access "
            f"Evaluation (lifetime {_minutes(lifetime.lifetime)}, {lifetime.source}); CAE-capable apps "
            f"({CAE_APPS}) {'were' if ended else 'are'} cut at once"
        )
        if user.get("accountEnabled"):
            detail += (
                "; the account is still enabled: a sign-in with its password and methods gets new "
                "tokens (entra.suspend_user blocks it)"
            )
        return self._record(account, "access_tokens", ResidualStatus.UNTIL, detail, until=until).at(now)

    def _refresh_tokens(
        self, account: Account, user: Mapping[str, Any], applied: Mapping[str, datetime]
    ) -> ResidualAccess:
        if REVOKE in applied:
            detail = (
                f"refresh tokens and session cookies revoked at {_at(applied[REVOKE])} (Entra ID refuses "
                f"any issued before {user.get('signInSessionsValidFromDateTime')}): every app must sign in "
                "again"
            )
            return self._record(account, "refresh_tokens", ResidualStatus.ENDED, detail)
        if SUSPEND in applied and not user.get("accountEnabled"):
            detail = (
                f"not revoked, but Entra ID refuses them while the account is disabled (entra.suspend_user "
                f"at {_at(applied[SUSPEND])}); they work again if the account is enabled before "
                "entra.revoke_sessions runs"
            )
            if user.get("onPremisesSyncEnabled"):
                detail += (
                    ", and the account is synchronized from AD: a directory sync enables it again "
                    "unless the AD account is disabled (ad.disable_user)"
                )
            return self._record(account, "refresh_tokens", ResidualStatus.ENDED, detail)
        detail = (
            "refresh tokens and session cookies stay valid (up to 90 days, renewed as they are used): "
            "sessions not revoked (entra.revoke_sessions ends them)"
        )
        if SUSPEND in applied:
            detail = (
                f"the account is enabled again since entra.suspend_user at {_at(applied[SUSPEND])}; " + detail
            )
        return self._record(account, "refresh_tokens", ResidualStatus.REMAINS, detail)

    # -- what is registered ------------------------------------------------------------------
    async def _listed(
        self,
        account: Account,
        reply: GraphReply,
        operation: str,
        kind: str,
        applied: Mapping[str, datetime],
        judge: Callable[[Account, list[dict[str, Any]], Mapping[str, datetime]], ResidualAccess],
    ) -> ResidualAccess:
        """The kind judged from a listed collection; UNKNOWN, naming the permission, on 403."""
        if reply.status == 403:
            error = self.error(reply, operation, account.name)
            detail = f"could not be read, assume it still works: {error.message}"
            return self._record(account, kind, ResidualStatus.UNKNOWN, detail)
        if not reply.ok:
            raise self.error(reply, operation, account.name)
        return judge(account, await self.eviction.collection(reply), applied)

    def _methods(
        self, account: Account, methods: list[dict[str, Any]], applied: Mapping[str, datetime]
    ) -> ResidualAccess:
        others = [m for m in methods if m.get("@odata.type") != PASSWORD_TYPE]
        items = [f"{self.eviction.method_name(m)} registered {m.get('createdDateTime')}" for m in others] + [
            "password" for m in methods if m.get("@odata.type") == PASSWORD_TYPE
        ]
        if REMOVE_METHODS in applied:
            removal = f"entra.remove_auth_methods ran at {_at(applied[REMOVE_METHODS])}"
        else:
            removal = "entra.remove_auth_methods not applied"
        if others:
            kept = (
                " (these were outside its window, or registered since)"
                if REMOVE_METHODS in applied
                else ": it deletes them"
            )
            detail = (
                f"{len(others)} method(s) besides the password stay registered: whoever holds them passes "
                f"multifactor authentication once the account can sign in; {removal}{kept}"
            )
            return self._record(account, "auth_methods", ResidualStatus.REMAINS, detail, items=tuple(items))
        if FORCE_PASSWORD in applied:
            forced = _at(applied[FORCE_PASSWORD])
            password = f"it must be changed at the next sign-in (entra.force_password_reset at {forced})"
        else:
            password = "it stays valid: entra.force_password_reset if it may be known"
        detail = f"only the password is left, {password}; {removal}"
        return self._record(account, "auth_methods", ResidualStatus.ENDED, detail, items=tuple(items))

    def _devices(
        self, account: Account, devices: list[dict[str, Any]], applied: Mapping[str, datetime]
    ) -> ResidualAccess:
        enabled = [d for d in devices if d.get("accountEnabled")]
        items = tuple(
            f"{d.get('displayName')} ({d.get('operatingSystem')}, {d.get('trustType')}, {d.get('id')})"
            for d in enabled
        )
        disabled = len(devices) - len(enabled)
        if DISABLE_DEVICES in applied:
            action = f"entra.disable_devices ran at {_at(applied[DISABLE_DEVICES])}"
        else:
            action = "entra.disable_devices not applied"
        if enabled:
            left = (
                " (left enabled: devices other than Windows, which only the Entra admin center or Intune "
                "disables, and devices registered since)"
                if DISABLE_DEVICES in applied
                else ": it disables the Windows ones"
            )
            detail = (
                f"{len(enabled)} enabled device(s) registered to the user: each can hold a primary refresh "
                f"token that signs the user in to apps; {action}{left}"
            )
            return self._record(account, "devices", ResidualStatus.REMAINS, detail, items=items)
        detail = f"no enabled device is registered to the user ({disabled} disabled); {action}"
        return self._record(account, "devices", ResidualStatus.ENDED, detail)
