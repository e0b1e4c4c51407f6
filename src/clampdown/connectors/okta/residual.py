"""What an Okta account may still use after a containment acted, kind by kind, from Okta's
documented behaviour (shared/contracts/okta):

  sessions       Revoking a user's sessions (DELETE .../sessions), deactivating the user and
                 Universal Logout end the Okta sessions. Suspended users "can't sign in to Okta":
                 Okta does not document that suspending ends the sessions already open.
  access_tokens  OAuth access tokens are JWTs that a resource server may validate locally, by
                 signature and `exp`: a revocation (oauthTokens=true, a revoked consent, Universal
                 Logout) is seen at once by token introspection, not by such a server. A token
                 issued just before the cut lives its whole lifetime: one hour at the org
                 authorization server (fixed), what the access policy rule says at a custom one
                 (accessTokenLifetimeMinutes, 5 minutes to one day). Read with
                 okta.authorizationServers.read:
                   GET /api/v1/authorizationServers, .../{authServerId}/policies,
                   .../{authServerId}/policies/{policyId}/rules
  app_sessions   "This operation doesn't clear the sessions created for web or native apps"
                 (revokeUserSessions): only Universal Logout reaches into the apps that support it.
  grants         the consent grants left (GET /api/v1/users/{userId}/grants).
  factors        the MFA factors left (GET /api/v1/users/{userId}/factors).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.connectors.links import next_link
from clampdown.connectors.okta.client import OktaAnswer, OktaClient
from clampdown.connectors.okta.eviction import factor_name
from clampdown.connectors.okta.failures import failure
from clampdown.connectors.okta.settings import OktaSettings
from clampdown.connectors.refreshed import Refreshed
from clampdown.errors import ProviderError
from clampdown.model import Account, ResidualAccess, ResidualStatus

AUTH_SERVERS_SCOPE = "okta.authorizationServers.read"
ORG_SERVER_MINUTES = 60  # Okta: the org authorization server's access tokens live one hour, fixed
MAX_RULE_MINUTES = 1440  # Okta: a rule's access-token lifetime is at most one day
LIFETIME_CACHE_SECONDS = 300.0
_MAX_SERVER_PAGES = 20  # 200 servers a page; an org has a handful

CLEAR_SESSIONS = "okta.clear_sessions"
DEACTIVATE = "okta.deactivate_user"
SUSPEND = "okta.suspend_user"
REVOKE_GRANTS = "okta.revoke_grants"
RESET_FACTORS = "okta.reset_factors"
UNIVERSAL_LOGOUT = "okta.universal_logout"
EXPIRE_PASSWORD = "okta.expire_password"
# After the earliest of these no new access token is issued from before: the tokens are revoked
# (no refresh), or the user cannot sign in.
_TOKEN_CUTS = (CLEAR_SESSIONS, REVOKE_GRANTS, UNIVERSAL_LOGOUT, DEACTIVATE, SUSPEND)

ListItems = Callable[[Account], Awaitable[list[dict[str, Any]]]]


@dataclass(frozen=True)
class TokenLifetime:
    """The longest access-token lifetime in the org, and where it comes from."""

    minutes: int
    source: str  # "authorization server 'default', rule 'Default Policy Rule'"
    assumed: str | None = None  # why the custom servers' rules could not be read, when they could not


class _Unreadable(Exception):
    """A 403 to reading the authorization servers: the action account lacks the scope or role."""

    def __init__(self, answer: OktaAnswer) -> None:
        super().__init__(answer.error_text)
        self.answer = answer


class OktaResidualAccess:
    """Reads what an Okta account may still use; the lifetime read is shared and cached a while."""

    def __init__(
        self,
        client: OktaClient,
        settings: OktaSettings,
        list_grants: ListItems,
        list_factors: ListItems,
        clock: Clock = SYSTEM_CLOCK,
        monotonic: Callable[[], float] = time.monotonic,
        cache_seconds: float = LIFETIME_CACHE_SECONDS,
    ) -> None:
        self.client = client
        self.settings = settings
        self._list_grants = list_grants
        self._list_factors = list_factors
        self.clock = clock
        self._lifetime = Refreshed(self._read_lifetime, cache_seconds, monotonic)

    async def read(self, account: Account, applied: Mapping[str, datetime]) -> list[ResidualAccess]:
        """sessions, access_tokens, app_sessions, grants and factors of `account`; a kind whose read
        fails is UNKNOWN with the reason (assume it works), the others are still answered."""
        now = self.clock.now()
        tokens, grants, factors = await asyncio.gather(
            self._guarded("access_tokens", account, self._access_tokens(account, applied, now)),
            self._guarded("grants", account, self._grants(account, applied)),
            self._guarded("factors", account, self._factors(account, applied)),
        )
        sessions, app_sessions = self._sessions(account, applied), self._app_sessions(account, applied)
        return [sessions, tokens, app_sessions, grants, factors]

    async def longest_token_lifetime(self) -> TokenLifetime:
        """The longest access-token lifetime in the org, read at most every `cache_seconds`;
        concurrent reads for many accounts share one."""
        return await self._lifetime.get()

    # --- kinds -----------------------------------------------------------------------------
    def _sessions(self, account: Account, applied: Mapping[str, datetime]) -> ResidualAccess:
        enders = {a: applied[a] for a in (CLEAR_SESSIONS, DEACTIVATE, UNIVERSAL_LOGOUT) if a in applied}
        how = {
            CLEAR_SESSIONS: CLEAR_SESSIONS,
            DEACTIVATE: f"{DEACTIVATE}: a deactivated user has no session",
            UNIVERSAL_LOGOUT: UNIVERSAL_LOGOUT,
        }
        # What the connector's own settings make an action do besides its main effect: said only
        # when no action that always ends them ran (its answer is certain, theirs may have warned).
        if not enders:
            if SUSPEND in applied and self.settings.clear_sessions:
                enders[SUSPEND] = applied[SUSPEND]
                how[SUSPEND] = (
                    f"{SUSPEND}, which clears them after suspending (providers.okta.clear_sessions); "
                    "had its result warned 'Sessions were NOT cleared', they remain"
                )
            if EXPIRE_PASSWORD in applied and self.settings.expire_with_temp_password:
                enders[EXPIRE_PASSWORD] = applied[EXPIRE_PASSWORD]
                how[EXPIRE_PASSWORD] = (
                    f"{EXPIRE_PASSWORD}, which revokes them with the temporary password "
                    "(providers.okta.expire_with_temp_password)"
                )
        if enders:
            action, at = min(enders.items(), key=lambda item: item[1])
            return _access(
                account, "sessions", ResidualStatus.ENDED,
                f"Okta sessions ended at {_when(at)} ({how[action]}); a new session needs a new sign-in",
            )  # fmt: skip
        if SUSPEND in applied:
            return _access(
                account, "sessions", ResidualStatus.REMAINS,
                f"suspended at {_when(applied[SUSPEND])}: Okta documents that a suspended user can't "
                "sign in, not that suspending ends the Okta sessions already open; take them as open "
                f"until they expire (the org's global session policy) or {CLEAR_SESSIONS} ends them",
            )  # fmt: skip
        return _access(
            account, "sessions", ResidualStatus.REMAINS,
            "Okta sessions stay open until they expire (the org's global session policy) or "
            f"{CLEAR_SESSIONS} or {DEACTIVATE} ends them",
        )  # fmt: skip

    async def _access_tokens(
        self, account: Account, applied: Mapping[str, datetime], now: datetime
    ) -> ResidualAccess:
        cuts = {a: applied[a] for a in _TOKEN_CUTS if a in applied}
        if not cuts:
            return _access(
                account, "access_tokens", ResidualStatus.REMAINS,
                "OAuth access and refresh tokens issued to the user stay valid and the user can get "
                f"new ones: nothing revoked them; {CLEAR_SESSIONS} revokes them, {SUSPEND} stops new ones",
            )  # fmt: skip
        action, cut = min(cuts.items(), key=lambda item: item[1])
        lifetime = await self.longest_token_lifetime()
        until = cut + timedelta(minutes=lifetime.minutes)
        why = f"longest lifetime {lifetime.minutes} min: {lifetime.source}"
        if lifetime.assumed:
            why = f"{why}; assumed, {lifetime.assumed}"
        issued = f"access tokens issued before {_when(cut)} ({action})"
        if until <= now:
            detail = f"{issued} expired by {_when(until, cut)} ({why})"
            return _access(account, "access_tokens", ResidualStatus.ENDED, detail, until)
        revokers = self._token_revokers(applied)
        introspection = (
            f"token introspection answers inactive at once ({', '.join(revokers)} revoked them)"
            if revokers
            else f"they were not revoked: {CLEAR_SESSIONS} would make token introspection answer inactive"
        )
        detail = (
            f"{issued} stay valid until {_when(until, cut)} at apps that validate them locally "
            f"({why}); {introspection}"
        )
        return _access(account, "access_tokens", ResidualStatus.UNTIL, detail, until)

    def _token_revokers(self, applied: Mapping[str, datetime]) -> list[str]:
        revokers = [a for a in (CLEAR_SESSIONS, REVOKE_GRANTS, UNIVERSAL_LOGOUT) if a in applied]
        if self.settings.clear_sessions and self.settings.revoke_oauth_tokens:
            # suspend and deactivate clear the sessions with oauthTokens=true in this configuration
            revokers += [a for a in (SUSPEND, DEACTIVATE) if a in applied]
        return sorted(revokers, key=lambda a: applied[a])

    def _app_sessions(self, account: Account, applied: Mapping[str, datetime]) -> ResidualAccess:
        own = (
            "apps without it keep the sessions they made themselves (their own cookies) until these "
            "expire by each app's rules: sign the user out there"
        )
        if UNIVERSAL_LOGOUT in applied:
            detail = (
                f"{UNIVERSAL_LOGOUT} at {_when(applied[UNIVERSAL_LOGOUT])} ended the sessions of the apps "
                f"that support Universal Logout; {own}"
            )
        else:
            detail = (
                "apps keep the sessions they made themselves (their own cookies) until these expire by "
                "each app's rules: ending the Okta sessions does not end them (Okta: it doesn't clear "
                f"the sessions created for web or native apps); {UNIVERSAL_LOGOUT} ends them in the apps "
                "that support Universal Logout"
            )
        if DEACTIVATE in applied:
            detail += (
                f"; {DEACTIVATE} deprovisioned the user from its assigned apps, which ends the account "
                "in the apps Okta provisions"
            )
        return _access(account, "app_sessions", ResidualStatus.REMAINS, detail)

    async def _grants(self, account: Account, applied: Mapping[str, datetime]) -> ResidualAccess:
        grants = await self._list_grants(account)
        # scopeId is the scope's name (OAuth2ScopeConsentGrant); clientId the app's
        items = tuple(sorted({f"{g.get('clientId') or 'an app'}: {g.get('scopeId') or '?'}" for g in grants}))
        revoked = applied.get(REVOKE_GRANTS)
        if items:
            since = f", given since {REVOKE_GRANTS} at {_when(revoked)}" if revoked else ""
            detail = (
                f"{len(items)} consent grant(s) left{since}: these apps keep the user's consent to these "
                f"scopes and get tokens for them without asking again; {REVOKE_GRANTS} revokes them"
            )
            return _access(account, "grants", ResidualStatus.REMAINS, detail, items=items)
        done = f": {REVOKE_GRANTS} revoked them at {_when(revoked)}" if revoked else ""
        return _access(account, "grants", ResidualStatus.ENDED, f"no consent grant left{done}")

    async def _factors(self, account: Account, applied: Mapping[str, datetime]) -> ResidualAccess:
        items = tuple(factor_name(f) for f in await self._list_factors(account))
        reset = applied.get(RESET_FACTORS)
        if items:
            since = f", enrolled since {RESET_FACTORS} at {_when(reset)}" if reset else ""
            detail = (
                f"{len(items)} enrolled MFA factor(s) left{since}: whoever holds one passes Okta's MFA "
                f"with it; {RESET_FACTORS} removes them"
            )
            return _access(account, "factors", ResidualStatus.REMAINS, detail, items=items)
        done = f": {RESET_FACTORS} reset them at {_when(reset)}" if reset else ""
        return _access(account, "factors", ResidualStatus.ENDED, f"no enrolled MFA factor left{done}")

    async def _guarded(
        self, kind: str, account: Account, reading: Awaitable[ResidualAccess]
    ) -> ResidualAccess:
        try:
            return await reading
        except ProviderError as exc:
            return _access(
                account, kind, ResidualStatus.UNKNOWN,
                f"could not be read, so take it as still working: {exc.message}",
            )  # fmt: skip

    # --- the longest access-token lifetime ------------------------------------------------------
    async def _read_lifetime(self) -> TokenLifetime:
        org = "Okta's org authorization server, fixed at one hour"
        try:
            longest = await self._longest_rule()
        except _Unreadable as refused:
            code = refused.answer.error_code or f"HTTP {refused.answer.status}"
            return TokenLifetime(
                ORG_SERVER_MINUTES,
                org,
                f"the custom authorization servers could not be read: the action account needs the "
                f"{AUTH_SERVERS_SCOPE} scope and an admin role that reads them ({code}: "
                f"{refused.answer.error_text}); a custom server's rule may let tokens live up to one day",
            )
        if longest is None:
            none = "the org has no active custom authorization server rule"
            return TokenLifetime(ORG_SERVER_MINUTES, f"{org}; {none}")
        minutes, where = longest
        if minutes <= ORG_SERVER_MINUTES:
            return TokenLifetime(
                ORG_SERVER_MINUTES, f"{org}; no custom server's rule is longer ({minutes} min: {where})"
            )
        return TokenLifetime(minutes, where)

    async def _longest_rule(self) -> tuple[int, str] | None:
        """(minutes, where) of the longest access-token lifetime among the active rules of the active
        policies of the active custom servers; None when there is no such rule."""
        servers = [s for s in await self._servers() if s.get("status") == "ACTIVE" and s.get("id")]
        if not servers:
            return None
        policies = await asyncio.gather(*(self._listed(_policies_path(str(s["id"]))) for s in servers))
        reads = [
            (server, policy)
            for server, found in zip(servers, policies, strict=True)
            for policy in found
            if policy.get("status") == "ACTIVE" and policy.get("id")
        ]
        rules = await asyncio.gather(
            *(self._listed(f"{_policies_path(str(s['id']))}/{p['id']}/rules") for s, p in reads)
        )
        best: tuple[int, str] | None = None
        for (server, _), found in zip(reads, rules, strict=True):
            for rule in found:
                if rule.get("status") != "ACTIVE":
                    continue
                where = f"authorization server '{server.get('name')}', rule '{rule.get('name')}'"
                minutes = _rule_minutes(rule)
                if minutes is None:
                    minutes, where = MAX_RULE_MINUTES, f"{where} (states no lifetime: taken as one day)"
                if best is None or minutes > best[0]:
                    best = (minutes, where)
        return best

    async def _servers(self) -> list[dict[str, Any]]:
        servers: list[dict[str, Any]] = []
        path: str | None = "/api/v1/authorizationServers"
        params: dict[str, str] | None = {"limit": "200"}
        for _ in range(_MAX_SERVER_PAGES):
            if path is None:
                break
            answer = await self._get(path, params)
            servers += [s for s in answer.body or [] if isinstance(s, dict)]
            following = next_link(answer.headers.get_list("link"))
            path, params = (self.client.follow(following) if following else None), None
        return servers

    async def _listed(self, path: str) -> list[dict[str, Any]]:
        """A list of policies or rules; empty when its server or policy went since it was listed."""
        answer = await self._get(path, None, missing_ok=True)
        return [item for item in answer.body or [] if isinstance(item, dict)]

    async def _get(self, path: str, params: dict[str, str] | None, missing_ok: bool = False) -> OktaAnswer:
        answer = await self.client.request("GET", path, params=params)
        if answer.status == 200 and isinstance(answer.body, list):
            return answer
        if answer.status == 404 and missing_ok:
            return OktaAnswer(200, [], answer.headers, answer.request_id)
        if answer.status == 403 and answer.error_code != "E0000005":  # E0000005: no credentials at all
            raise _Unreadable(answer)
        raise failure(answer, "read the org's authorization servers", scopes=AUTH_SERVERS_SCOPE)


def _policies_path(server_id: str) -> str:
    return f"/api/v1/authorizationServers/{server_id}/policies"


def _rule_minutes(rule: dict[str, Any]) -> int | None:
    actions = rule.get("actions")
    token = actions.get("token") if isinstance(actions, dict) else None
    minutes = token.get("accessTokenLifetimeMinutes") if isinstance(token, dict) else None
    return minutes if isinstance(minutes, int) and minutes > 0 else None


def _access(
    account: Account,
    kind: str,
    status: ResidualStatus,
    detail: str,
    until: datetime | None = None,
    items: tuple[str, ...] = (),
) -> ResidualAccess:
    return ResidualAccess("okta", account.name, kind, status, detail, until, items)


def _when(moment: datetime | None, since: datetime | None = None) -> str:
    """`2026-12-06 10:07:00 UTC`; only the time of day when `since` was the same day."""
    if moment is None:
        return "an unknown time"
    utc = moment.astimezone(UTC)
    if since is not None and since.astimezone(UTC).date() == utc.date():
        return f"{utc:%H:%M:%S} UTC"
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC"
