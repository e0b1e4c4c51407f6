"""The Okta connector: resolve users, read their status, suspend, unsuspend and deactivate them;
the eviction actions (sessions, grants, factors, password, risk, Universal Logout) are in eviction.py,
what an account may still use after them (residual access) in residual.py.

Lifecycle calls are sent optimistically; when Okta refuses a transition (400 E0000001, 403
E0000038, or 404 E0000007 to deactivating a user already DEPROVISIONED) the user's status is read
to tell "already in the requested state" (success) from a transition Okta does not allow (a
permanent failure that names the status) or a user that is gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

from clampdown.connectors.base import FoundUser
from clampdown.connectors.okta.auth import ApiTokenAuth, OktaAuth, ServiceAppAuth
from clampdown.connectors.okta.client import OktaAnswer, OktaClient
from clampdown.connectors.okta.eviction import EvictionActions
from clampdown.connectors.okta.failures import OKTA_USER_ID, REFUSED_TRANSITION, failure, user_path
from clampdown.connectors.okta.pacer import RateLimitPacer
from clampdown.connectors.okta.residual import OktaResidualAccess
from clampdown.connectors.okta.search import search_users
from clampdown.connectors.okta.settings import OktaSettings
from clampdown.errors import (
    AccountNotFound,
    ActionAccountError,
    InvalidInput,
    PermanentError,
    TransientError,
)
from clampdown.model import (
    Account,
    AccountState,
    ActionContext,
    ActionOutcome,
    ResidualAccess,
    StateValue,
)

_CANNOT_SIGN_IN = {"SUSPENDED", "DEPROVISIONED", "STAGED", "PROVISIONED"}
DEACTIVATE_WARNING = (
    "Deactivation cannot be cleanly reversed: Okta removed the user's app assignments; "
    "reactivating the user does not restore them."
)


class OktaConnector(EvictionActions):
    """One Okta org; one HTTP client and one rate-limit pacer shared by all concurrent actions."""

    provider: ClassVar[str] = "okta"
    settings_model: ClassVar[type[OktaSettings]] = OktaSettings

    def __init__(self, settings: OktaSettings, auth: OktaAuth | None = None) -> None:
        self.settings = settings
        self.auth = auth or _auth_from(settings)
        self.pacer = RateLimitPacer(settings.max_concurrency, settings.rate_limit_reserve)
        self.client = OktaClient(
            settings.org_url,
            self.auth,
            self.pacer,
            retries=settings.retries,
            timeout=settings.timeout_seconds,
            max_throttle_wait=settings.max_throttle_wait_seconds,
            max_connections=settings.max_concurrency,
            verify=settings.verify_tls,
        )
        self.residual = OktaResidualAccess(self.client, settings, self._list_grants, self._list_factors)

    @classmethod
    def from_settings(cls, settings: Any) -> OktaConnector:
        """Build the connector from a validated `OktaSettings`."""
        return cls(settings)

    # --- reading ---------------------------------------------------------------------------
    async def resolve_user(self, reference: str) -> Account:
        """The user a reference names: Okta user id, login, login shortname or email.

        Only a reference shaped like an Okta user id is fetched by path: Okta reads some path
        segments specially (`/users/me` is the API token's owner: a planted account named "me"
        must not resolve to Clampdown's own admin); everything else is searched for by login and
        email, where no word is special."""
        reference = reference.strip()
        if not reference:
            raise InvalidInput("an Okta user reference is empty")
        if OKTA_USER_ID.fullmatch(reference):
            answer = await self.client.request("GET", user_path(reference))
            if answer.status == 200:
                return _account(answer.body)
            if answer.status != 404:
                raise failure(answer, f"look up the Okta user '{reference}'")
        escaped = reference.replace("\\", "\\\\").replace('"', '\\"')
        # The login is unique in an org and is the strong anchor: it wins over another user's email.
        found = await self._search(f'profile.login eq "{escaped}"', reference)
        if not found:
            if "@" in reference:
                found = await self._search(f'profile.email eq "{escaped}"', reference)
            else:  # a login shortname: the part of the login before the @
                found = await self._search(f'profile.login sw "{escaped}@"', reference)
        if not found:
            raise AccountNotFound(f"Okta has no user with id, login or email '{reference}'")
        if len(found) > 1:
            raise PermanentError(
                f"'{reference}' matches several Okta users; give the Okta user id or login instead",
                code="ambiguous_user",
            )
        return _account(found[0])

    async def search_users(self, text: str, limit: int) -> list[FoundUser]:
        """Users matching a fragment through the `search` expression (search.py)."""
        return await search_users(self.client, text, limit, _account)

    async def _search(self, search: str, reference: str) -> list[dict[str, Any]]:
        """At most two users matching a search expression (two are enough to say it is ambiguous)."""
        answer = await self.client.request("GET", "/api/v1/users", params={"search": search, "limit": "2"})
        if answer.status != 200:
            raise failure(answer, f"search Okta for '{reference}'")
        return list(answer.body or [])

    async def read_state(self, account: Account) -> AccountState:
        """The user's status as Okta reports it now; with `user_risk`, its risk level too."""
        if not self.settings.user_risk:
            return _state(await self._read_user(account))
        answer, risk = await asyncio.gather(self._read_user(account), self._risk_or_none(account))
        state = _state(answer)
        return AccountState(state.enabled, state.status, {**state.values, "riskLevel": risk})

    async def _read_user(self, account: Account) -> OktaAnswer:
        answer = await self.client.request("GET", user_path(account.id))
        if answer.status != 200:
            raise failure(answer, f"read the Okta user {account.name}", account)
        return answer

    async def _risk_or_none(self, account: Account) -> str | None:
        # The risk is extra: a read that cannot get it records None (an undo then sets LOW)
        # rather than failing every Okta action.
        try:
            return await self.read_risk(account)
        except (PermanentError, ActionAccountError, AccountNotFound):
            return None

    async def residual_access(
        self, account: Account, applied: Mapping[str, datetime]
    ) -> list[ResidualAccess]:
        """What `account` may still use (sessions, access tokens, app sessions, grants, factors),
        given the Okta actions `applied` to it and when; see residual.py."""
        return await self.residual.read(account, applied)

    async def check(self) -> None:
        """Raise unless the org answers and the action account may read users."""
        answer = await self.client.request("GET", "/api/v1/users", params={"limit": "1"})
        if answer.status != 200:
            raise failure(answer, "list Okta users with the action account")

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- actions ---------------------------------------------------------------------------
    async def suspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        """ACTIVE -> SUSPENDED, then (if configured) clear the user's sessions."""
        changed, answer = await self._transition(account, context, "suspend", "ACTIVE", "SUSPENDED")
        if not self.settings.clear_sessions:
            return self._outcome(account, changed, answer, "suspended", False)
        try:
            cleared = await self._clear_sessions(account)
        except PermanentError as exc:
            # The suspension stands and is what was asked; the sessions are reported, not hidden.
            outcome = self._outcome(account, changed, answer, "suspended", False)
            warning = f"Sessions were NOT cleared: {exc.message}"
            return ActionOutcome(
                outcome.changed,
                f"{outcome.message}; {warning}",
                outcome.provider_request_id,
                (warning,),
                outcome.details,
            )
        return self._outcome(account, changed, answer, "suspended", cleared)

    async def unsuspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        """SUSPENDED -> ACTIVE; as an undo, does nothing if the user was already suspended before."""
        restore = context.restore_state
        if restore is not None and restore.status == "SUSPENDED":
            return ActionOutcome(
                changed=False,
                message=(
                    f"{account.name} was already SUSPENDED before the action being undone; left suspended"
                ),
            )
        changed, answer = await self._transition(account, context, "unsuspend", "SUSPENDED", "ACTIVE")
        return self._outcome(account, changed, answer, "unsuspended (ACTIVE)", False)

    async def deactivate_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Any status -> DEPROVISIONED (asynchronous at Okta; waits for the end). Not reversible."""
        cleared = False
        # Read first: Okta answers 404 E0000007 to deactivating a DEPROVISIONED user, which must
        # read as "done" (a repeat, or a retry whose first answer was lost), not "no such user".
        current = await self.read_state(account)
        if current.status == "DEPROVISIONED" and not current.values.get("transitioningToStatus"):
            before = context.state_before.status if context.state_before else "DEPROVISIONED"
            details: dict[str, StateValue] = {"sessions_cleared": False, "status": current.status}
            if before != "DEPROVISIONED":  # an earlier attempt of this action did it
                message = f"{account.name} deactivated (DEPROVISIONED) by an earlier attempt"
                return ActionOutcome(True, message, None, (DEACTIVATE_WARNING,), details)
            already = ActionOutcome.already(f"{account.name} is already deactivated (DEPROVISIONED)")
            return replace(already, details=details)
        if self.settings.clear_sessions and current.status != "DEPROVISIONED":
            # Sessions go first, while the user is not yet deprovisioned.
            cleared = await self._clear_sessions(account)
        changed, answer = await self._transition(
            account, context, "deactivate", None, "DEPROVISIONED", headers={"Prefer": "respond-async"}
        )
        state = await self._wait_for_deprovisioned(account)
        outcome = self._outcome(account, changed, answer, "deactivated (DEPROVISIONED)", cleared)
        warnings = (*outcome.warnings, DEACTIVATE_WARNING) if changed else outcome.warnings
        return ActionOutcome(
            outcome.changed,
            outcome.message,
            outcome.provider_request_id,
            warnings,
            {**outcome.details, "status": state.status},
        )

    # --- internals -------------------------------------------------------------------------
    async def _transition(
        self,
        account: Account,
        context: ActionContext,
        operation: str,
        from_status: str | None,
        to_status: str,
        headers: dict[str, str] | None = None,
    ) -> tuple[bool, OktaAnswer]:
        """POST the lifecycle operation; (changed, answer), or the error a person can act on."""
        answer = await self.client.request(
            "POST", user_path(account.id, f"/lifecycle/{operation}"), headers=headers
        )
        if answer.status == 200:
            return True, answer
        refused = answer.status in (400, 403) and answer.error_code in REFUSED_TRANSITION
        # A deactivation finished between our read and our request: Okta's 404 for a
        # DEPROVISIONED user (the read below tells it from a user that is really gone).
        gone_meanwhile = operation == "deactivate" and answer.status == 404
        if refused or gone_meanwhile:
            state = await self.read_state(account)
            if state.status == to_status or state.values.get("transitioningToStatus") == to_status:
                before = context.state_before.status if context.state_before else None
                # Our own earlier attempt may have done it, its answer lost on the way back.
                changed = before != to_status if before else answer.ambiguous_retries > 0
                return changed, answer
            allowed = f"only from {from_status}" if from_status else "not from this status"
            moving = state.values.get("transitioningToStatus")
            status = f"{state.status} (transitioning to {moving})" if moving else state.status
            raise PermanentError(
                f"Okta refused to {operation} {account.name}: the user is {status}, and Okta allows "
                f"{operation} {allowed} ({answer.error_code}: {answer.error_text})",
                code="transition_refused",
                provider_request_id=answer.request_id,
            )
        raise failure(answer, f"{operation} the Okta user {account.name}", account)

    async def _clear_sessions(self, account: Account) -> bool:
        params = {"oauthTokens": "true" if self.settings.revoke_oauth_tokens else "false"}
        answer = await self.client.request("DELETE", user_path(account.id, "/sessions"), params=params)
        if answer.status != 204:
            raise failure(answer, f"clear the sessions of the Okta user {account.name}", account)
        return True

    async def _wait_for_deprovisioned(self, account: Account) -> AccountState:
        deadline = time.monotonic() + self.settings.deactivate_wait_seconds
        pause = 0.1
        while True:
            state = await self.read_state(account)
            if state.status == "DEPROVISIONED":
                return state
            if time.monotonic() >= deadline:
                raise TransientError(
                    f"Okta is still deactivating {account.name} after "
                    f"{self.settings.deactivate_wait_seconds:.0f} s "
                    f"(status {state.status}, transitioning to DEPROVISIONED)",
                    code="okta_deactivation_pending",
                    retry_after=10.0,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _outcome(
        self, account: Account, changed: bool, answer: OktaAnswer, done: str, sessions_cleared: bool
    ) -> ActionOutcome:
        suffix = (
            "; sessions and OAuth tokens cleared"
            if sessions_cleared and self.settings.revoke_oauth_tokens
            else ("; sessions cleared" if sessions_cleared else "")
        )
        if not changed:
            base = ActionOutcome.already(f"{account.name} is already {done}")
            return ActionOutcome(
                False,
                base.message + suffix,
                answer.request_id,
                details={"sessions_cleared": sessions_cleared},
            )
        return ActionOutcome(
            True,
            f"{account.name} {done}{suffix}",
            answer.request_id,
            details={"sessions_cleared": sessions_cleared},
        )


def _auth_from(settings: OktaSettings) -> OktaAuth:
    if settings.api_token is not None:
        return ApiTokenAuth(settings.api_token.get_secret_value())
    assert settings.client_id is not None and settings.private_key is not None
    return ServiceAppAuth(
        settings.org_url,
        settings.client_id,
        settings.private_key.get_secret_value(),
        settings.scopes,
        settings.key_id,
    )


def _account(body: dict[str, Any]) -> Account:
    profile = body.get("profile") or {}
    attributes = {k: str(profile[k]) for k in ("login", "email") if profile.get(k)}
    return Account(
        provider="okta",
        id=str(body["id"]),
        name=str(profile.get("login") or body["id"]),
        attributes=attributes,
    )


def _state(answer: OktaAnswer) -> AccountState:
    body = answer.body
    status = str(body.get("status"))
    values: dict[str, Any] = {
        "status": status,
        "transitioningToStatus": body.get("transitioningToStatus"),
        "login": (body.get("profile") or {}).get("login"),
        "lastUpdated": body.get("lastUpdated"),
        "statusChanged": body.get("statusChanged"),
        "etag": answer.headers.get("Etag"),
    }
    return AccountState(enabled=status not in _CANNOT_SIGN_IN, status=status, values=values)
