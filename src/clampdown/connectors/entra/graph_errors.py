"""Graph's error answers turned into Clampdown errors with messages an analyst can act on:
the Graph code and message, the request-id to quote to Microsoft, and for 403 the application
permission the operation needs."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any

from clampdown.errors import (
    AccountNotFound,
    ActionAccountError,
    PermanentError,
    ProviderError,
    TransientError,
)

# The least-privileged application permission each operation needs (Graph permissions reference).
PERMISSIONS = {
    "read_user": "User.Read.All",
    "suspend_user": "User.EnableDisableAccount.All (plus User.Read.All)",
    "enable_user": "User.EnableDisableAccount.All (plus User.Read.All)",
    "revoke_sessions": "User.RevokeSessions.All",
    "read_risk": "IdentityRiskyUser.Read.All (needs Entra ID P2)",
    "mark_compromised": "IdentityRiskyUser.ReadWrite.All (needs Entra ID P2)",
    "dismiss_user_risk": "IdentityRiskyUser.ReadWrite.All (needs Entra ID P2)",
    "read_sign_ins": "AuditLog.Read.All",
    "force_password_reset": "User-PasswordProfile.ReadWrite.All (or User.ReadWrite.All with the "
    "User Administrator directory role)",
    "read_auth_methods": "UserAuthenticationMethod.Read.All",
    "remove_auth_methods": "UserAuthenticationMethod.ReadWrite.All",
    "read_devices": "Device.Read.All",
    "disable_devices": "Device.ReadWrite.All",
    "enable_devices": "Device.ReadWrite.All",
    "read_token_lifetime_policies": "Policy.Read.All",
}
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header (seconds, possibly fractional, or an HTTP date)."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: the caller backs off on its own
    return max(0.0, parsed.timestamp() - time.time())


def request_id(body: Any, headers: Mapping[str, str]) -> str | None:
    """The request-id Microsoft support asks for: from innerError, else the response header."""
    if isinstance(body, dict):
        inner = (body.get("error") or {}).get("innerError") or {}
        if isinstance(inner, dict) and inner.get("request-id"):
            return str(inner["request-id"])
    return next((v for k, v in headers.items() if k.lower() == "request-id"), None)


def graph_error(
    status: int, body: Any, headers: Mapping[str, str], operation: str, target: str, client_id: str
) -> ProviderError:
    """The Clampdown error for a failed Graph answer to `operation` on `target`."""
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code", "")) if isinstance(error, dict) else ""
    text = str(error.get("message", "")) if isinstance(error, dict) else ""
    rid = request_id(body, headers)
    said = f"Graph answered {status} {code}: {text}".rstrip(": ") + (f" (request-id {rid})" if rid else "")
    if status == 403:
        permission = PERMISSIONS.get(operation, "a permission for this operation")
        return ActionAccountError(
            f"Entra ID denied {operation} on {target}: the app registration {client_id} needs the "
            f"application permission {permission}, granted with admin consent. {said}",
            provider_request_id=rid,
        )
    if status == 401:
        return ActionAccountError(
            f"Graph rejected the access token of app {client_id} for {operation} on {target}. {said}",
            provider_request_id=rid,
        )
    if status == 404:
        return AccountNotFound(f"Entra ID has no user {target}. {said}", provider_request_id=rid)
    if status in RETRYABLE_STATUSES:
        return TransientError(
            f"Graph could not serve {operation} on {target} now. {said}",
            retry_after=retry_after(headers),
            provider_request_id=rid,
            code="throttled" if status == 429 else "provider_unavailable",
        )
    return PermanentError(f"Graph refused {operation} on {target}. {said}", provider_request_id=rid)
