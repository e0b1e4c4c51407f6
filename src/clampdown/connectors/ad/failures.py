"""LDAP results and ldap3 exceptions turned into Clampdown's error types, worded for an analyst."""

from __future__ import annotations

import re
from typing import Any

from ldap3.core import exceptions as ldap_exc  # type: ignore[import-untyped]

from clampdown.errors import (
    AccountNotFound,
    ActionAccountError,
    PermanentError,
    ProviderError,
    TransientError,
)

SUCCESS = 0
INVALID_CREDENTIALS = 49
INSUFFICIENT_ACCESS = 50
NO_SUCH_OBJECT = 32
CONSTRAINT_VIOLATION = 19
# busy, unavailable, time limit, admin limit, other (Samba's "server is shutting down"), server down
TRANSIENT_RESULTS = frozenset({51, 52, 3, 11, 80, 81})

# The `data NNN` sub-codes AD and Samba put in an invalidCredentials bind answer.
BIND_DATA_MEANING = {
    "525": "the account does not exist",
    "52e": "the password is wrong",
    "530": "logon is not permitted at this time",
    "531": "logon is not permitted from this workstation",
    "532": "the password has expired",
    "533": "the account is disabled",
    "701": "the account has expired",
    "773": "the password must be changed at next logon",
    "775": "the account is locked out",
}

# The connection itself failed or the DC dropped it: another connection or DC may work.
DROPPED = (
    ldap_exc.LDAPSocketOpenError,
    ldap_exc.LDAPSocketReceiveError,
    ldap_exc.LDAPSocketSendError,
    ldap_exc.LDAPSessionTerminatedByServerError,
    ldap_exc.LDAPSocketCloseError,
    ldap_exc.LDAPCommunicationError,
    ldap_exc.LDAPResponseTimeoutError,
    ldap_exc.LDAPMaximumRetriesError,
    ConnectionError,
    TimeoutError,
)

_DATA_RE = re.compile(r"\bdata ([0-9a-fA-F]+)\b")


def bind_data_code(message: str) -> str | None:
    """The `data NNN` sub-code of a failed bind's diagnostic message (773, 533, 52e ...)."""
    match = _DATA_RE.search(message or "")
    return match.group(1).lower() if match else None


def bind_failure(result: dict[str, Any], who: str, server: str) -> ProviderError:
    """The error for the action account's own failed bind."""
    code = int(result.get("result", -1))
    message = str(result.get("message") or result.get("description") or "")
    if code == INVALID_CREDENTIALS:
        data = bind_data_code(message)
        meaning = BIND_DATA_MEANING.get(data or "", "the credentials were rejected")
        return ActionAccountError(
            f"the action account {who} cannot bind to {server}: {meaning} (LDAP 49, data {data or '?'})"
        )
    if code in TRANSIENT_RESULTS:
        return TransientError(f"{server} refused the bind for now: {result.get('description')} {message}")
    return ActionAccountError(
        f"the action account {who} cannot bind to {server}: {result.get('description')} ({code}) {message}"
    )


def operation_failure(
    result: dict[str, Any], doing: str, dn: str, *, needs: str = "", admin_count: int = 0
) -> ProviderError:
    """The error for a failed search or modify on `dn`; `needs` names the right the action needs."""
    code = int(result.get("result", -1))
    text = f"{result.get('description')} ({code}) {result.get('message') or ''}".strip()
    if code == INSUFFICIENT_ACCESS:
        message = f"the action account lacks rights on {dn} to {doing}"
        if needs:
            message += f": it needs {needs}"
        if admin_count:
            message += (
                ". The account is protected by AdminSDHolder (adminCount=1): SDProp resets its ACL "
                "every hour, so rights delegated on its OU do not apply; a privileged administrator "
                "must act on it, or it must leave the protected groups and have adminCount cleared"
            )
        return ActionAccountError(message + f" (LDAP {code})")
    if code == NO_SUCH_OBJECT:
        return AccountNotFound(f"{dn} no longer exists in the directory (LDAP {code})")
    if code == CONSTRAINT_VIOLATION:
        return PermanentError(f"the directory refused to {doing} on {dn}: {text}", code="constraint")
    if code in TRANSIENT_RESULTS:
        return TransientError(f"the domain controller could not {doing} on {dn} now: {text}")
    return PermanentError(f"the directory refused to {doing} on {dn}: {text}")
