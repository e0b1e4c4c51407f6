"""The Graph application permissions each Entra action needs: one table, keyed by action id.

Each entry lists the Graph calls the connector makes for the action (connector.py, eviction.py,
risk.py) and, per call, the application permissions that suffice, least privileged first, as
Microsoft's Graph reference pages list them (read through the docs search, 2025-2026 copies):
user-update (accountEnabled), user-revokesigninsessions, riskyuser-confirmcompromised / dismiss /
list, authentication-list-methods, fido2- / microsoftauthenticator- / temporaryaccesspass-
authenticationmethod-delete, device-update, tokenlifetimepolicy-list, signin-list. Where the
pages did not confirm a permission it is said so below, never left out silently:

- passwordProfile: User-PasswordProfile.ReadWrite.All is the connector's documented least
  privilege; the user-update page read lists User.ReadWrite.All (and Directory.ReadWrite.All).
- phoneMethods delete: only UserAuthenticationMethod.ReadWrite.All was confirmed (a narrower
  UserAuthMethod-Phone.* permission may exist; it is not assumed).
- GET /users/{id}/registeredDevices: its page lists no application permission at all; tenants
  answer it with the device-reading ones, which are listed.

Directory roles (privileged-user protection) are not application permissions and cannot be read
from an app token: `NOT_CHECKABLE` says so for the report.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    """One Graph call an action makes, and the application permissions that each allow it."""

    call: str
    any_of: tuple[str, ...]  # least privileged first

    def met_by(self, granted: frozenset[str]) -> bool:
        return any(p in granted for p in self.any_of)

    def wanted(self) -> str:
        """What would suffice, as a person reads it: the least privileged, then the others."""
        first, *others = self.any_of
        return f"{first} (or {', '.join(others)})" if others else first


_USER_READ = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
READ_USER = Need("GET /users/{id} (find the user, read its state)", _USER_READ)
SET_ENABLED = Need(
    "PATCH /users/{id} accountEnabled",
    ("User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
)
REVOKE_SESSIONS = Need(
    "POST /users/{id}/revokeSignInSessions",
    ("User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
)
READ_RISK = Need(
    "GET /identityProtection/riskyUsers", ("IdentityRiskyUser.Read.All", "IdentityRiskyUser.ReadWrite.All")
)
CONFIRM_COMPROMISED = Need(
    "POST /identityProtection/riskyUsers/confirmCompromised", ("IdentityRiskyUser.ReadWrite.All",)
)
DISMISS_RISK = Need("POST /identityProtection/riskyUsers/dismiss", ("IdentityRiskyUser.ReadWrite.All",))
PASSWORD_PROFILE = Need(
    "PATCH /users/{id} passwordProfile",
    ("User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
)
_METHODS_WRITE = "UserAuthenticationMethod.ReadWrite.All"
LIST_METHODS = Need(
    "GET /users/{id}/authentication/methods", ("UserAuthenticationMethod.Read.All", _METHODS_WRITE)
)
DELETE_METHODS = (
    Need(
        "DELETE /users/{id}/authentication/fido2Methods/{id}",
        ("UserAuthMethod-Passkey.ReadWrite.All", _METHODS_WRITE),
    ),
    Need(
        "DELETE /users/{id}/authentication/microsoftAuthenticatorMethods/{id}",
        (_METHODS_WRITE, "UserAuthMethod-MicrosoftAuthApp.ReadWrite.All"),
    ),
    Need("DELETE /users/{id}/authentication/phoneMethods/{id}", (_METHODS_WRITE,)),
    Need(
        "DELETE /users/{id}/authentication/temporaryAccessPassMethods/{id}",
        (_METHODS_WRITE, "UserAuthMethod-TAP.ReadWrite.All"),
    ),
)
LIST_DEVICES = Need(
    "GET /users/{id}/registeredDevices/microsoft.graph.device",
    ("Device.Read.All", "Device.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"),
)
SET_DEVICE_ENABLED = Need(
    "PATCH /devices/{id} accountEnabled", ("Device.ReadWrite.All", "Directory.ReadWrite.All")
)
READ_SIGN_INS = Need("GET /auditLogs/signIns", ("AuditLog.Read.All",))
READ_LIFETIME_POLICIES = Need(
    "GET /policies/tokenLifetimePolicies",
    ("Policy.Read.All", "Policy.Read.ApplicationConfiguration", "Policy.ReadWrite.ApplicationConfiguration"),
)

# Every Entra action of the catalog, by id: the calls it makes (finding the user comes first).
ACTION_NEEDS: dict[str, tuple[Need, ...]] = {
    "entra.suspend_user": (READ_USER, SET_ENABLED),
    "entra.enable_user": (READ_USER, SET_ENABLED),
    "entra.revoke_sessions": (READ_USER, REVOKE_SESSIONS),
    "entra.mark_compromised": (READ_USER, READ_RISK, CONFIRM_COMPROMISED),
    "entra.dismiss_user_risk": (READ_USER, READ_RISK, DISMISS_RISK),
    "entra.force_password_reset": (READ_USER, PASSWORD_PROFILE),
    "entra.remove_auth_methods": (READ_USER, LIST_METHODS, *DELETE_METHODS),
    "entra.disable_devices": (READ_USER, LIST_DEVICES, SET_DEVICE_ENABLED),
    "entra.enable_devices": (READ_USER, SET_DEVICE_ENABLED),
}

# What else reads Graph: without these no action fails, the feature does (or degrades, as said).
FEATURE_NEEDS: dict[str, tuple[Need, ...]] = {
    "hunting: sign-in log pull": (READ_SIGN_INS,),
    "state snapshots: user risk (omitted without it)": (READ_RISK,),
    "residual access (token lifetime taken as the default without the policies)": (
        READ_LIFETIME_POLICIES,
        LIST_METHODS,
        LIST_DEVICES,
    ),
}

NOT_CHECKABLE = (
    "directory roles of the app's service principal: an app token does not carry them. To disable, "
    "or force a password change for, a user who holds an admin role, Entra ID's privileged-user "
    "protection wants the service principal to hold Privileged Authentication Administrator (or "
    "Global Administrator), whatever its application permissions",
    "licences: entra.mark_compromised and entra.dismiss_user_risk need Entra ID P2, the sign-in log "
    "P1 or P2; a permission granted without the licence still answers 403",
)
