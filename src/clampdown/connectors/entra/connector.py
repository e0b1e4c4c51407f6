"""The Entra ID connector: suspend / enable, revoke sessions, mark compromised / dismiss risk, and
eviction (eviction.py: password change, authentication methods, devices), one user at a time or
many per Graph request (`$batch` and the `userIds` lists); and what a contained user may still
use (residual.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

import jwt

from clampdown.clock import SystemClock
from clampdown.connectors.base import FoundUser
from clampdown.connectors.entra.auth import TokenSource
from clampdown.connectors.entra.client import (
    GraphClient,
    GraphReply,
    SubRequest,
    addressable,
    object_path,
    user_path,
)
from clampdown.connectors.entra.eviction import Eviction
from clampdown.connectors.entra.graph_errors import graph_error
from clampdown.connectors.entra.permissions import ACTION_NEEDS
from clampdown.connectors.entra.residual import Residual
from clampdown.connectors.entra.risk import AT_RISK_STATES, NO_RISK, RISKY_USERS, RiskView
from clampdown.connectors.entra.search import search_users
from clampdown.connectors.entra.settings import EntraSettings
from clampdown.errors import AccountNotFound, ActionAccountError, PermanentError, ProviderError
from clampdown.model import (
    Account,
    AccountState,
    ActionContext,
    ActionOutcome,
    ResidualAccess,
    StateValue,
)

USER_SELECT = (
    "id,userPrincipalName,displayName,accountEnabled,onPremisesSyncEnabled,"
    "onPremisesSamAccountName,onPremisesSecurityIdentifier,signInSessionsValidFromDateTime"
)
HYBRID_WARNING = (
    "{upn} is synchronized from on-premises Active Directory: the next directory sync "
    "re-enables it in Entra ID unless the AD account is disabled too (ad.disable_user)."
)
Outcomes = list[ActionOutcome | Exception]


def _user_state(user: dict[str, Any], at_risk: dict[str, dict[str, Any]] | None) -> AccountState:
    """A user's state; risk from the tenant's at-risk list (None values when it was unreadable)."""
    enabled = bool(user.get("accountEnabled"))
    values: dict[str, StateValue] = {
        "accountEnabled": enabled,
        "onPremisesSyncEnabled": bool(user.get("onPremisesSyncEnabled")),
        "signInSessionsValidFromDateTime": user.get("signInSessionsValidFromDateTime"),
        "riskLevel": None,
        "riskState": None,
    }
    if at_risk is not None:
        # A user not on the at-risk list has no risk (never flagged, dismissed or remediated).
        risk = at_risk.get(str(user.get("id")), NO_RISK)
        values["riskLevel"], values["riskState"] = risk.get("riskLevel"), risk.get("riskState")
    return AccountState(enabled=enabled, status="enabled" if enabled else "disabled", values=values)


class EntraConnector:
    """Microsoft Entra ID through Microsoft Graph v1.0 (one tenant, one app registration)."""

    provider: ClassVar[str] = "entra"
    settings_model: ClassVar[type[EntraSettings]] = EntraSettings
    # Up to 60 users per call: one risk-list request, or three `$batch`es of 20 sent concurrently.
    max_batch: int = 60

    def __init__(self, settings: EntraSettings) -> None:
        self.settings = settings
        self.tokens = TokenSource(settings)
        self.graph = GraphClient(settings, self.tokens)
        self.risk = RiskView(
            self.graph, settings.client_id, settings.risk_batch_size, settings.risk_cache_seconds
        )
        self.eviction = Eviction(self.graph, settings, self._error, SystemClock())
        self.residual = Residual(self.graph, self.eviction, self._error, settings.client_id, SystemClock())

    @classmethod
    def from_settings(cls, settings: Any) -> EntraConnector:
        """Build the connector from its validated `[providers.entra]` settings."""
        return cls(
            settings if isinstance(settings, EntraSettings) else EntraSettings.model_validate(settings)
        )

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self.graph.aclose()
        self.tokens.close()

    def _error(self, reply: GraphReply, operation: str, target: str) -> ProviderError:
        return graph_error(
            reply.status, reply.body, reply.headers, operation, target, self.settings.client_id
        )

    # -- reading -----------------------------------------------------------------------------
    async def resolve_user(self, reference: str) -> Account:
        """The user an object id, UPN, on-premises SID or sAMAccountName names."""
        reference = reference.strip()
        if addressable(reference):
            reply = await self.graph.send("GET", user_path(reference), params={"$select": USER_SELECT})
            if not reply.ok:
                raise self._error(reply, "read_user", reference)
            return self._account(reply.body)
        literal = reference.replace("'", "''")
        if "@" in reference:  # not a well-formed UPN: ask by value, never by path
            filters = [f"userPrincipalName eq '{literal}'"]
        elif reference.upper().startswith("S-1-"):
            filters = [f"onPremisesSecurityIdentifier eq '{literal}'"]
        else:
            # A synced user by its sAMAccountName; a cloud-only one by the name part of its UPN.
            filters = [
                f"onPremisesSamAccountName eq '{literal}'",
                f"startswith(userPrincipalName,'{literal}@')",
            ]
        for query in filters:
            reply = await self.graph.send("GET", "/users", params={"$filter": query, "$select": USER_SELECT})
            if not reply.ok:
                raise self._error(reply, "read_user", reference)
            found = reply.body.get("value", [])
            if len(found) > 1:
                raise AccountNotFound(
                    f"Entra ID has {len(found)} users matching {query}; give the object id or UPN"
                )
            if found:
                return self._account(found[0])
        raise AccountNotFound(
            f"Entra ID has no user '{reference}' (object id, UPN, on-premises SID or sAMAccountName)"
        )

    async def resolve_users(self, references: list[str]) -> list[Account | Exception]:
        """Many references at once (object ids and UPNs in `$batch`es of 20, the rest one by one);
        one Account or error per reference, in order."""
        direct = [i for i, r in enumerate(references) if addressable(r.strip())]
        results: list[Account | Exception | None] = [None] * len(references)
        requests = [
            SubRequest("GET", f"{user_path(references[i].strip())}?$select={USER_SELECT}") for i in direct
        ]
        for index, reply in zip(direct, await self.graph.run_many(requests) if requests else [], strict=True):
            ok = reply.ok and isinstance(reply.body, dict)
            results[index] = (
                self._account(reply.body) if ok else self._error(reply, "read_user", references[index])
            )

        async def one(reference: str) -> Account | Exception:
            try:
                return await self.resolve_user(reference)
            except ProviderError as exc:
                return exc

        others = [i for i in range(len(references)) if results[i] is None]
        for index, found in zip(
            others, await asyncio.gather(*(one(references[i]) for i in others)), strict=True
        ):
            results[index] = found
        return [r for r in results if r is not None]

    async def search_users(self, text: str, limit: int) -> list[FoundUser]:
        """Users matching a fragment through Graph's `$search` (search.py)."""
        return await search_users(self.graph, USER_SELECT, text, limit, self._account, self._error)

    def _account(self, user: dict[str, Any]) -> Account:
        attributes = {"userPrincipalName": str(user["userPrincipalName"])}
        for name in ("onPremisesSecurityIdentifier", "onPremisesSamAccountName"):
            if user.get(name):
                attributes[name] = str(user[name])
        return Account(
            provider=self.provider,
            id=str(user["id"]),
            name=str(user["userPrincipalName"]),
            attributes=attributes,
        )

    async def read_state(self, account: Account) -> AccountState:
        """accountEnabled, session validity, sync and Identity Protection risk of one user."""
        result = (await self.read_states([account]))[0]
        if isinstance(result, Exception):
            raise result
        return result

    async def read_states(self, accounts: list[Account]) -> list[AccountState | Exception]:
        """The state of each account: users in `$batch`es, risk from the tenant's at-risk list."""
        requests = [SubRequest("GET", object_path(a.id, f"?$select={USER_SELECT}")) for a in accounts]
        users, at_risk = await asyncio.gather(self.graph.run_many(requests), self.risk.at_risk())
        out: list[AccountState | Exception] = []
        for account, reply in zip(accounts, users, strict=True):
            if reply.ok:
                out.append(_user_state(reply.body, at_risk))
            else:
                out.append(self._error(reply, "read_user", account.name))
        return out

    async def residual_access(
        self, account: Account, applied: Mapping[str, datetime]
    ) -> list[ResidualAccess]:
        """What `account` may still use given the Entra actions `applied` to it (ResidualAccessReader):
        access_tokens, refresh_tokens, auth_methods and devices, one record each."""
        return await self.residual.read(account, applied)

    async def check(self) -> None:
        """Get a token, read one user, and name any application permission the app lacks."""
        token = await self.tokens.token()
        reply = await self.graph.send("GET", "/users", params={"$top": "1", "$select": "id"})
        if not reply.ok:
            raise self._error(reply, "read_user", "the user list")
        # The app's application permissions travel in its own token's `roles` claim (the identity
        # platform signed it; the signature is Graph's to check, not ours).
        roles = frozenset(jwt.decode(token, options={"verify_signature": False}).get("roles") or [])
        wanted: dict[str, list[str]] = {}  # what would suffice -> the actions that need it
        for action, needs in ACTION_NEEDS.items():
            for need in needs:
                if not need.met_by(roles):
                    wanted.setdefault(need.wanted(), []).append(action)
        missing = [f"{need} ({', '.join(dict.fromkeys(actions))})" for need, actions in wanted.items()]
        if missing:
            raise ActionAccountError(
                f"the app registration {self.settings.client_id} lacks application "
                f"permissions: {'; '.join(missing)}; grant them with admin consent"
            )

    # -- single actions ----------------------------------------------------------------------
    async def suspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        """accountEnabled=false: blocks new sign-ins (sessions already issued live on until revoked)."""
        return await self._one("suspend_user", account, context)

    async def enable_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        """accountEnabled=true, unless the user was disabled before the action being undone."""
        return await self._one("enable_user", account, context)

    async def revoke_sessions(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Invalidate the user's refresh tokens and session cookies: every app must sign in again."""
        return await self._one("revoke_sessions", account, context)

    async def mark_compromised(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Confirm the user compromised in Identity Protection: risk level high."""
        return await self._one("mark_compromised", account, context)

    async def dismiss_user_risk(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Dismiss the user's risk in Identity Protection: risk level none."""
        return await self._one("dismiss_user_risk", account, context)

    async def force_password_reset(self, account: Account, context: ActionContext) -> ActionOutcome:
        """The user must change the password at the next sign-in (refused for a user synced from AD)."""
        return await self._one("force_password_reset", account, context)

    async def remove_auth_methods(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Delete the user's FIDO2 keys, Authenticator, phones and temporary access passes."""
        return await self._one("remove_auth_methods", account, context)

    async def disable_devices(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Disable every enabled Windows device registered to the user."""
        return await self._one("disable_devices", account, context)

    async def enable_devices(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Enable again exactly the devices the entra.disable_devices being undone disabled."""
        return await self._one("enable_devices", account, context)

    async def _one(self, method: str, account: Account, context: ActionContext) -> ActionOutcome:
        result = (await self.perform_batch(method, [(account, context)]))[0]
        if isinstance(result, Exception):
            raise result
        return result

    # -- batched actions ---------------------------------------------------------------------
    async def perform_batch(self, method: str, items: list[tuple[Account, ActionContext]]) -> Outcomes:
        """Perform catalog method `method` on each item; one result or error per item, in order."""
        if method in ("suspend_user", "enable_user"):
            return await self._set_enabled(method, items)
        if method == "revoke_sessions":
            return await self._revoke(items)
        if method in ("mark_compromised", "dismiss_user_risk"):
            return await self._risk_action(method, items)
        if method == "force_password_reset":
            states = await self._current_states(items, "onPremisesSyncEnabled")
            return await self.eviction.force_password_reset(items, states)
        if method == "remove_auth_methods":
            return await self.eviction.remove_auth_methods(items)
        if method == "disable_devices":
            return await self.eviction.disable_devices(items)
        if method == "enable_devices":
            return await self.eviction.enable_devices(items)
        error = PermanentError(f"the entra connector does not implement '{method}'", code="not_supported")
        return [error for _ in items]

    async def _current_states(
        self,
        items: list[tuple[Account, ActionContext]],
        key: str,
    ) -> list[AccountState | Exception]:
        """Each item's state: the one the engine read just before (context.state_before, when it
        carries `key`), else read now."""
        states: list[AccountState | Exception | None] = [
            ctx.state_before if ctx.state_before is not None and key in ctx.state_before.values else None
            for _, ctx in items
        ]
        missing = [i for i, s in enumerate(states) if s is None]
        if missing:
            read = await self.read_states([items[i][0] for i in missing])
            for index, state in zip(missing, read, strict=True):
                states[index] = state
        return [s for s in states if s is not None]

    async def _set_enabled(self, method: str, items: list[tuple[Account, ActionContext]]) -> Outcomes:
        enable = method == "enable_user"
        states = await self._current_states(items, "accountEnabled")
        results: Outcomes = []
        todo: list[int] = []
        for index, ((account, context), state) in enumerate(zip(items, states, strict=True)):
            restore = context.restore_state
            if isinstance(state, Exception):
                results.append(state)
            elif enable and restore is not None and restore.enabled is False:
                results.append(
                    ActionOutcome(
                        changed=False,
                        message=f"{account.name} was already disabled "
                        "before the suspend being undone; left disabled",
                    )
                )
            elif state.values.get("accountEnabled") is enable:
                results.append(
                    ActionOutcome.already(f"{account.name} is {'enabled' if enable else 'disabled'}")
                )
            else:
                results.append(ActionOutcome(changed=True, message=""))
                todo.append(index)
        body = {"accountEnabled": enable}
        requests = [SubRequest("PATCH", object_path(items[i][0].id), body) for i in todo]
        replies = await self.graph.run_many(requests) if requests else []
        for index, reply in zip(todo, replies, strict=True):
            account = items[index][0]
            state = states[index]
            if not reply.ok:
                doing = "enable" if enable else "disable"
                results[index] = await self.eviction.explain_denied(reply, method, account, doing)
                continue
            warnings: tuple[str, ...] = ()
            if not enable and isinstance(state, AccountState) and state.values.get("onPremisesSyncEnabled"):
                warnings = (HYBRID_WARNING.format(upn=account.name),)
            message = (
                f"Enabled {account.name} in Entra ID: the user can sign in again"
                if enable
                else f"Suspended {account.name} in Entra ID: new sign-ins are blocked; sessions already "
                "issued last until revoked (entra.revoke_sessions)"
            )
            results[index] = ActionOutcome(
                changed=True,
                message=message,
                warnings=warnings,
                provider_request_id=reply.headers.get("request-id"),
                details={"accountEnabled": enable},
            )
        return results

    async def _revoke(self, items: list[tuple[Account, ActionContext]]) -> Outcomes:
        requests = [
            SubRequest("POST", object_path(account.id, "/revokeSignInSessions")) for account, _ in items
        ]
        replies = await self.graph.run_many(requests)
        results: Outcomes = []
        for (account, _), reply in zip(items, replies, strict=True):
            if not reply.ok:  # any 2xx is success: the docs and Graph disagree on which one
                results.append(self._error(reply, "revoke_sessions", account.name))
                continue
            results.append(
                ActionOutcome(
                    changed=True,
                    message=f"Revoked the sign-in sessions of {account.name}: refresh tokens and session "
                    "cookies stop working within minutes; the user must sign in again",
                    provider_request_id=reply.headers.get("request-id"),
                )
            )
        return results

    async def _risk_action(self, method: str, items: list[tuple[Account, ActionContext]]) -> Outcomes:
        compromise = method == "mark_compromised"
        known: dict[str, StateValue] = {}
        for account, context in items:
            before = context.state_before.values.get("riskState") if context.state_before else None
            if before is not None:
                known[account.id] = before
        unknown = [a.id for a, _ in items if a.id not in known]
        if unknown:
            try:
                fresh = await self.risk.of(unknown)
            except ProviderError as exc:
                return [exc for _ in items]
            known.update({user_id: risk.get("riskState") for user_id, risk in fresh.items()})
        results: Outcomes = []
        todo: list[int] = []
        for index, (account, _) in enumerate(items):
            risk_state = known.get(account.id)
            if compromise and risk_state == "confirmedCompromised":
                results.append(ActionOutcome.already(f"{account.name} is confirmed compromised"))
            elif not compromise and risk_state not in AT_RISK_STATES:
                results.append(ActionOutcome.already(f"{account.name} has no risk to dismiss"))
            else:
                results.append(ActionOutcome(changed=True, message=""))
                todo.append(index)
        action = "confirmCompromised" if compromise else "dismiss"
        size = self.settings.risk_batch_size
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            reply = await self.graph.send(
                "POST",
                f"{RISKY_USERS}/{action}",
                json={"userIds": [items[i][0].id for i in chunk]},
                identity_protection=True,
            )
            for index in chunk:
                account, context = items[index]
                if not reply.ok:
                    results[index] = self._error(reply, method, account.name)
                    continue
                if compromise:
                    self.risk.record(account.id, "high", "confirmedCompromised")
                else:
                    self.risk.record(account.id, "none", "dismissed")
                results[index] = self._risk_outcome(compromise, account, context, reply)
        return results

    @staticmethod
    def _risk_outcome(
        compromise: bool,
        account: Account,
        context: ActionContext,
        reply: GraphReply,
    ) -> ActionOutcome:
        if compromise:
            message = (
                f"Confirmed {account.name} compromised in Entra ID Protection: user risk is high, "
                "so risk-based Conditional Access policies apply"
            )
            return ActionOutcome(
                changed=True,
                message=message,
                details={"riskLevel": "high"},
                provider_request_id=reply.headers.get("request-id"),
            )
        warnings: tuple[str, ...] = ()
        before = context.restore_state.values.get("riskLevel") if context.restore_state else None
        if before not in (None, "none"):
            warnings = (
                f"{account.name} was at risk level {before} before; Graph cannot restore a risk "
                "level, so the risk is dismissed (none) instead",
            )
        return ActionOutcome(
            changed=True,
            message=f"Dismissed the user risk of {account.name} in Entra ID Protection: risk level none",
            details={"riskLevel": "none"},
            warnings=warnings,
            provider_request_id=reply.headers.get("request-id"),
        )
