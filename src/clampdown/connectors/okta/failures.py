"""Okta's error answers as Clampdown errors, and the one way a user id becomes a path."""

from __future__ import annotations

import re

from clampdown.connectors.okta.client import OktaAnswer
from clampdown.errors import AccountNotFound, ActionAccountError, PermanentError, TransientError
from clampdown.model import Account

# Okta user ids: "00u" and 17 letters or digits.
OKTA_USER_ID = re.compile(r"00u[0-9A-Za-z]{17}")
REFUSED_TRANSITION = {"E0000001", "E0000038"}
# 403 E0000005 "Invalid session": Okta's answer to a missing or malformed Authorization header.
_BAD_CREDENTIALS_403 = {"E0000005"}
USERS_SCOPES = "okta.users.manage / okta.users.read"


def user_path(user_id: str, rest: str = "") -> str:
    """`/api/v1/users/{id}{rest}`, only for an id shaped like an Okta user id: nothing else (`me`,
    `..`, a login with `/`, `?` or `#`) may become a path segment."""
    if not OKTA_USER_ID.fullmatch(user_id):
        raise AccountNotFound(f"'{user_id}' is not an Okta user id")
    return f"/api/v1/users/{user_id}{rest}"


def failure(
    answer: OktaAnswer, doing: str, account: Account | None = None, scopes: str = USERS_SCOPES
) -> Exception:
    """The clampdown error for an Okta error answer; `scopes` names what a service app needs."""
    detail = f"{answer.error_code or 'HTTP ' + str(answer.status)}: {answer.error_text}"
    rid = answer.request_id
    if answer.status == 404:
        who = f"{account.name} ({account.id})" if account else "that user"
        return AccountNotFound(
            f"Okta has no user {who}; it may have been deleted ({detail})", provider_request_id=rid
        )
    if answer.status == 401 or (answer.status == 403 and answer.error_code in _BAD_CREDENTIALS_403):
        return ActionAccountError(
            f"Okta did not accept the action account's credentials while trying to {doing}: the API token or "
            f"service-app token is missing, malformed, invalid, expired or revoked ({detail})",
            provider_request_id=rid,
        )
    if answer.status == 403 and answer.error_code not in REFUSED_TRANSITION:
        return ActionAccountError(
            f"The Okta action account may not {doing}: give it an admin role that manages users and, for a "
            f"service app, the {scopes} scopes ({detail})",
            provider_request_id=rid,
        )
    if answer.status == 429 or answer.status >= 500:
        return TransientError(f"Okta could not {doing} now ({detail})", provider_request_id=rid)
    return PermanentError(f"Okta refused to {doing} ({detail})", provider_request_id=rid)
