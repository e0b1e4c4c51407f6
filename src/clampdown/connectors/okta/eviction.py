"""Okta actions that put an attacker out of an account already in their hands: sessions and OAuth
tokens, consent grants, MFA factors, the password, the user's risk and Universal Logout.

Each uses only operations of Okta's Management and OAuth OpenAPI documents (shared/contracts/okta):
  clear_sessions    DELETE /api/v1/users/{userId}/sessions?oauthTokens=true      okta.users.manage
  revoke_grants     GET + DELETE /api/v1/users/{userId}/grants                    okta.users.read, .manage
  reset_factors     GET /api/v1/users/{userId}/factors, POST .../reset_factors    okta.users.read, .manage
  expire_password   POST .../lifecycle/expire_password[_with_temp_password]       okta.users.manage
  set_risk          GET + PUT /api/v1/users/{userId}/risk (Identity Threat Prot.) okta.userRisk.read, .manage
  universal_logout  POST /oauth2/v1/global-token-revocation                       okta.universalLogout.manage
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from clampdown.connectors.links import next_link
from clampdown.connectors.okta.client import OktaAnswer, OktaClient
from clampdown.connectors.okta.failures import failure, user_path
from clampdown.connectors.okta.settings import OktaSettings
from clampdown.errors import ActionAccountError, PermanentError
from clampdown.model import SEALED_DETAIL, Account, ActionContext, ActionOutcome
from clampdown.sealing import seal

RISK_SCOPES = "okta.userRisk.read / okta.userRisk.manage"
LOGOUT_SCOPE = "okta.universalLogout.manage"
_SETTABLE_RISK = ("HIGH", "MEDIUM", "LOW")  # PUT accepts these; GET may also say NONE
# riskReason: at most 500 of letters, digits, spaces, hyphens, commas and periods (UserRiskRequest).
_RISK_REASON_UNSAFE = re.compile(r"[^a-zA-Z0-9\s\-,.]")
FACTORS_GONE_WARNING = (
    "The removed factors cannot be restored: the user enrolls again at the next sign-in, "
    "so make sure it is the user (not the attacker) who does."
)
_MAX_GRANT_PAGES = 50  # 200 grants a page: far more than one user holds


class EvictionActions:
    """The eviction actions of `OktaConnector` (which provides `client` and `settings`)."""

    client: OktaClient
    settings: OktaSettings

    async def clear_sessions(self, account: Account, context: ActionContext) -> ActionOutcome:
        """End every Okta session of the user and revoke the OAuth/OIDC tokens issued to it."""
        answer = await self.client.request(
            "DELETE", user_path(account.id, "/sessions"), params={"oauthTokens": "true"}
        )
        if answer.status != 204:
            raise failure(answer, f"clear the sessions of the Okta user {account.name}", account)
        return ActionOutcome(
            True,
            f"{account.name}: Okta sessions cleared and OAuth tokens revoked",
            answer.request_id,
            details={"sessions_cleared": True, "oauth_revoked": True},
        )

    async def revoke_grants(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Revoke every consent grant of the user (what apps it let act on its behalf)."""
        grants = await self._list_grants(account)
        # Revoked even when the list was empty: a grant made since the read goes too.
        answer = await self.client.request("DELETE", user_path(account.id, "/grants"))
        if answer.status != 204:
            raise failure(answer, f"revoke the consent grants of the Okta user {account.name}", account)
        clients = sorted({str(g.get("clientId")) for g in grants if g.get("clientId")})
        details: dict[str, Any] = {"grants_revoked": len(grants), "grant_clients": clients}
        if not grants:
            return ActionOutcome(
                False, f"Already in the requested state: {account.name} had no consent grants",
                answer.request_id, details=details,
            )  # fmt: skip
        return ActionOutcome(
            True,
            f"{account.name}: {len(grants)} consent grant(s) revoked ({', '.join(clients) or 'no app'})",
            answer.request_id,
            details=details,
        )

    async def _list_grants(self, account: Account) -> list[dict[str, Any]]:
        grants: list[dict[str, Any]] = []
        path: str | None = user_path(account.id, "/grants")
        params: dict[str, str] | None = {"limit": "200"}
        for _ in range(_MAX_GRANT_PAGES):
            if path is None:
                break
            answer = await self.client.request("GET", path, params=params)
            if answer.status != 200 or not isinstance(answer.body, list):
                raise failure(answer, f"list the consent grants of the Okta user {account.name}", account)
            grants += [g for g in answer.body if isinstance(g, dict)]
            following = next_link(answer.headers.get_list("link"))
            path, params = (self.client.follow(following) if following else None), None
        return grants

    async def reset_factors(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Reset every enrolled MFA factor; the result names the factors removed."""
        factors = await self._list_factors(account)
        if not factors:
            return ActionOutcome.already(f"{account.name} has no enrolled MFA factor")
        reset = await self.client.request("POST", user_path(account.id, "/lifecycle/reset_factors"))
        if reset.status != 200:
            raise failure(reset, f"reset the MFA factors of the Okta user {account.name}", account)
        removed = [factor_name(f) for f in factors]
        return ActionOutcome(
            True,
            f"{account.name}: {len(removed)} MFA factor(s) reset: {', '.join(removed)}",
            reset.request_id,
            (FACTORS_GONE_WARNING,),
            {"factors_removed": removed},
        )

    async def _list_factors(self, account: Account) -> list[dict[str, Any]]:
        answer = await self.client.request("GET", user_path(account.id, "/factors"))
        if answer.status != 200 or not isinstance(answer.body, list):
            raise failure(answer, f"list the MFA factors of the Okta user {account.name}", account)
        return [f for f in answer.body if isinstance(f, dict)]

    async def expire_password(self, account: Account, context: ActionContext) -> ActionOutcome:
        """PASSWORD_EXPIRED; with `expire_with_temp_password`, the password is also replaced by a
        temporary one (which only the requester may read, sealed) and the sessions are revoked."""
        if self.settings.expire_with_temp_password:
            return await self._expire_with_temp_password(account, context)
        answer = await self.client.request("POST", user_path(account.id, "/lifecycle/expire_password"))
        if answer.status != 200:
            raise failure(answer, f"expire the password of the Okta user {account.name}", account)
        before = context.state_before.status if context.state_before else None
        status = str((answer.body or {}).get("status")) if isinstance(answer.body, dict) else None
        if before == "PASSWORD_EXPIRED":
            return ActionOutcome(
                False, f"Already in the requested state: {account.name}'s password was already expired",
                answer.request_id, details={"status": status},
            )  # fmt: skip
        return ActionOutcome(
            True,
            f"{account.name}: password expired (must be changed at the next sign-in)",
            answer.request_id,
            details={"status": status},
        )

    async def _expire_with_temp_password(self, account: Account, context: ActionContext) -> ActionOutcome:
        answer = await self.client.request(
            "POST",
            user_path(account.id, "/lifecycle/expire_password_with_temp_password"),
            params={"revokeSessions": "true"},
        )
        if answer.status != 200:
            raise failure(answer, f"expire the password of the Okta user {account.name}", account)
        temporary = answer.body.get("tempPassword") if isinstance(answer.body, dict) else None
        outcome = ActionOutcome(
            True,
            f"{account.name}: password replaced by a temporary one and expired; sessions revoked",
            answer.request_id,
            details={"sessions_cleared": True},
        )
        # The temporary password leaves this method only sealed to the requester's one-time key:
        # the action center, the audit chain, webhooks and logs see a ciphertext at most.
        if (
            isinstance(temporary, str)
            and temporary
            and self.hands_secret("expire_password")
            and context.seal_to
        ):
            sealed = seal(context.seal_to, temporary, f"action:{context.action_id}")
            return replace(
                outcome,
                message=f"{outcome.message}; the temporary password is sealed for {context.requested_by}",
                details={**outcome.details, SEALED_DETAIL: sealed},
            )
        return replace(
            outcome,
            message=f"{outcome.message}; the temporary password was handed to nobody (reset it to give one)",
        )

    def hands_secret(self, method: str) -> bool:
        """Whether `method` makes a secret for the requester: expire_password with
        expire_with_temp_password and hand_temp_password_to_caller."""
        s = self.settings
        return method == "expire_password" and s.expire_with_temp_password and s.hand_temp_password_to_caller

    # --- user risk (Identity Threat Protection) --------------------------------------------
    async def read_risk(self, account: Account) -> str | None:
        """The user's risk level (HIGH, MEDIUM, LOW or NONE); None when Okta does not say."""
        answer = await self.client.request("GET", user_path(account.id, "/risk"))
        if answer.status != 200:
            raise _risk_failure(answer, f"read the risk of the Okta user {account.name}", account)
        level = answer.body.get("riskLevel") if isinstance(answer.body, dict) else None
        return str(level) if level else None

    async def set_risk(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Risk level HIGH: the risk policies and entity risk policy of the org act on it."""
        before = await self.read_risk(account)
        if before == "HIGH":
            return ActionOutcome(
                False, f"Already in the requested state: {account.name}'s risk is already HIGH",
                details={"riskLevel": "HIGH", "risk_before": before},
            )  # fmt: skip
        answer = await self._put_risk(account, context, "HIGH", "marked compromised")
        return ActionOutcome(
            True,
            f"{account.name}: Okta user risk set to HIGH (was {before or 'unknown'})",
            answer.request_id,
            details={"riskLevel": "HIGH", "risk_before": before},
        )

    async def clear_risk(self, account: Account, context: ActionContext) -> ActionOutcome:
        """The undo of set_risk: the level read before it (LOW when it was NONE or unknown)."""
        restore = context.restore_state
        recorded = restore.values.get("riskLevel") if restore is not None else None
        target = str(recorded) if recorded in _SETTABLE_RISK else "LOW"
        if target == "HIGH":
            return ActionOutcome.already(f"{account.name}'s risk was already HIGH before; left HIGH")
        current = await self.read_risk(account)
        if current == target:
            return ActionOutcome.already(f"{account.name}'s risk is already {target}")
        answer = await self._put_risk(account, context, target, "risk restored")
        why = (
            "the level before"
            if recorded in _SETTABLE_RISK
            else f"the level before was {recorded or 'not read'}"
        )
        return ActionOutcome(
            True,
            f"{account.name}: Okta user risk set to {target} ({why}; was {current or 'unknown'})",
            answer.request_id,
            details={"riskLevel": target, "risk_before": current},
        )

    async def _put_risk(self, account: Account, context: ActionContext, level: str, why: str) -> OktaAnswer:
        reason = _RISK_REASON_UNSAFE.sub(" ", f"Clampdown action {context.action_id}, {why}")[:500]
        answer = await self.client.request(
            "PUT", user_path(account.id, "/risk"), body={"riskLevel": level, "riskReason": reason}
        )
        if answer.status not in (200, 201):
            raise _risk_failure(answer, f"set the risk of the Okta user {account.name}", account)
        return answer

    # --- Universal Logout ------------------------------------------------------------------
    async def universal_logout(self, account: Account, context: ActionContext) -> ActionOutcome:
        """Okta's global token revocation: every token and session of the user, in Okta and in
        the apps that support Universal Logout, is revoked."""
        answer = await self.client.request(
            "POST",
            "/oauth2/v1/global-token-revocation",
            body={"sub_id": {"format": "opaque", "id": account.id}},
        )
        if answer.status == 204:
            return ActionOutcome(
                True,
                f"{account.name}: Universal Logout: every token and session revoked, in Okta and in "
                "the apps with Universal Logout",
                answer.request_id,
                details={"universal_logout": True},
            )
        doing = f"revoke every token and session of {account.name} (Universal Logout)"
        if answer.status == 400:
            raise PermanentError(
                f"Okta refused to {doing}: HTTP 400; the org may not offer Universal Logout "
                "(global token revocation), or the user is unknown to it",
                code="universal_logout_refused",
                provider_request_id=answer.request_id,
            )
        raise failure(answer, doing, account, scopes=LOGOUT_SCOPE)


def factor_name(factor: dict[str, Any]) -> str:
    """A factor as a person reads it: its type, provider and id."""
    kind = str(factor.get("factorType") or "factor")
    provider = factor.get("provider")
    return f"{kind} ({provider}, {factor.get('id')})" if provider else f"{kind} ({factor.get('id')})"


def _risk_failure(answer: OktaAnswer, doing: str, account: Account) -> Exception:
    if answer.status == 403 and answer.error_code == "E0000006":
        return ActionAccountError(
            f"The Okta action account may not {doing}: user risk needs Identity Threat Protection in the "
            f"org, an admin role that manages user risk and, for a service app, the {RISK_SCOPES} "
            f"scopes ({answer.error_code}: {answer.error_text})",
            provider_request_id=answer.request_id,
        )
    return failure(answer, doing, account, scopes=RISK_SCOPES)
