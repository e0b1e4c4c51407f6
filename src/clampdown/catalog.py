"""The action types: one declarative entry each. The engine, CLI, API, console and RBAC learn
everything about an action from here; adding an action is one entry plus one connector method."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from clampdown.errors import InvalidInput
from clampdown.permissions import (
    GLOBAL_ADMINISTRATOR,
    RESPONSE_MANAGE,
    SECURITY_ADMINISTRATOR,
    SECURITY_OPERATOR,
)
from clampdown.secevents import ACCOUNT_DISABLED, ACCOUNT_ENABLED, CREDENTIAL_CHANGE, SESSION_REVOKED


@dataclass(frozen=True)
class ActionDefinition:
    """One action type. Access is granted by any of `roles` or any of `permissions`."""

    id: str
    provider: str
    method: str  # the connector method that performs it
    title: str
    description: str
    roles: frozenset[str]
    permissions: frozenset[str]
    inverse: str | None = None
    reversible: bool = True
    reason_required: bool = True
    warning: str | None = None  # shown before the action runs
    # What the action makes true, for dry-runs: (state key, value). A key is "enabled", "status"
    # or "values.<name>" of AccountState. None: the action always acts (revoke sessions).
    effect: tuple[str, object] | None = None
    # The Shared Signals event (secevents.py) its completion announces to receivers, as a step of a
    # containment or of its release: account-disabled, session-revoked, credential-change, account-enabled.
    announces: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "provider": self.provider,
            "title": self.title,
            "description": self.description,
            "roles": sorted(self.roles),
            "permissions": sorted(self.permissions),
            "inverse": self.inverse,
            "reversible": self.reversible,
            "reason_required": self.reason_required,
            "warning": self.warning,
        }


_ADMINS = frozenset({GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR})
_RESPONDERS = frozenset({GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR, SECURITY_OPERATOR})
_MANAGE = frozenset({RESPONSE_MANAGE})
_NONE: frozenset[str] = frozenset()

DEFINITIONS: tuple[ActionDefinition, ...] = (
    ActionDefinition(
        id="ad.disable_user",
        provider="ad",
        method="disable_user",
        title="Disable user in Active Directory",
        description="Sets ACCOUNTDISABLE in userAccountControl so the user cannot sign in on premises.",
        roles=_NONE,
        permissions=_MANAGE,
        inverse="ad.enable_user",
        effect=("enabled", False),
        announces=ACCOUNT_DISABLED,
    ),
    ActionDefinition(
        id="ad.enable_user",
        provider="ad",
        method="enable_user",
        title="Enable user in Active Directory",
        description="Clears ACCOUNTDISABLE in userAccountControl, leaving every other flag as it was.",
        roles=_NONE,
        permissions=_MANAGE,
        inverse="ad.disable_user",
        effect=("enabled", True),
        announces=ACCOUNT_ENABLED,
    ),
    ActionDefinition(
        id="ad.force_password_reset",
        provider="ad",
        method="force_password_reset",
        title="Force password reset in Active Directory",
        description=(
            "Sets pwdLastSet to 0: the user must change the password at next logon. A user with "
            "'Password never expires' has that flag cleared too (AD ignores pwdLastSet=0 otherwise); "
            "the undo sets it again."
        ),
        roles=_NONE,
        permissions=_MANAGE,
        inverse="ad.clear_password_reset",
        effect=("values.must_change_password", True),
        announces=CREDENTIAL_CHANGE,
    ),
    ActionDefinition(
        id="ad.clear_password_reset",
        provider="ad",
        method="clear_password_reset",
        title="Clear forced password reset in Active Directory",
        description="Sets pwdLastSet to -1 (now): the user is no longer made to change the password.",
        roles=_NONE,
        permissions=_MANAGE,
        inverse="ad.force_password_reset",
        effect=("values.must_change_password", False),
    ),
    # -- evict-ad: privileged group memberships (issue 16)
    ActionDefinition(
        id="ad.remove_privileged_groups",
        provider="ad",
        method="remove_privileged_groups",
        title="Remove from privileged groups in Active Directory",
        description=(
            "Takes the user out of Domain Admins, Enterprise Admins, Schema Admins, Administrators, "
            "the Operators groups, Group Policy Creator Owners, DnsAdmins, groups with adminCount=1 "
            "and groups nested into them (configurable); records exactly which, for the undo."
        ),
        roles=_NONE,
        permissions=_MANAGE,
        inverse="ad.restore_privileged_groups",
    ),
    ActionDefinition(
        id="ad.restore_privileged_groups",
        provider="ad",
        method="restore_privileged_groups",
        title="Restore privileged groups in Active Directory",
        description="Puts the user back into exactly the groups ad.remove_privileged_groups took it out of.",
        roles=_ADMINS,
        permissions=_NONE,
        inverse="ad.remove_privileged_groups",
        warning="This gives the account its administrative group memberships back.",
    ),
    ActionDefinition(
        id="entra.mark_compromised",
        provider="entra",
        method="mark_compromised",
        title="Mark user compromised",
        description="Confirms the user compromised in Entra ID Protection: risk level High.",
        roles=_ADMINS,
        permissions=_NONE,
        inverse="entra.dismiss_user_risk",
        effect=("values.riskLevel", "high"),
    ),
    ActionDefinition(
        id="entra.dismiss_user_risk",
        provider="entra",
        method="dismiss_user_risk",
        title="Dismiss user risk",
        description="Dismisses the user's risk in Entra ID Protection.",
        roles=_ADMINS,
        permissions=_NONE,
        inverse="entra.mark_compromised",
        effect=("values.riskLevel", "none"),
    ),
    ActionDefinition(
        id="entra.suspend_user",
        provider="entra",
        method="suspend_user",
        title="Suspend user in Entra ID",
        description="Sets accountEnabled to false: blocks new sign-ins and access to cloud resources.",
        roles=frozenset({GLOBAL_ADMINISTRATOR}),
        permissions=_NONE,
        inverse="entra.enable_user",
        effect=("enabled", False),
        announces=ACCOUNT_DISABLED,
    ),
    ActionDefinition(
        id="entra.enable_user",
        provider="entra",
        method="enable_user",
        title="Enable user in Entra ID",
        description="Sets accountEnabled to true: the user can sign in again.",
        roles=frozenset({GLOBAL_ADMINISTRATOR}),
        permissions=_NONE,
        inverse="entra.suspend_user",
        effect=("enabled", True),
        announces=ACCOUNT_ENABLED,
    ),
    ActionDefinition(
        id="entra.revoke_sessions",
        provider="entra",
        method="revoke_sessions",
        title="Require user to sign in again",
        description="Revokes the user's refresh tokens and session cookies in Entra ID.",
        roles=frozenset({GLOBAL_ADMINISTRATOR}),
        permissions=_NONE,
        reversible=False,
        announces=SESSION_REVOKED,
    ),
    # -- Entra ID eviction (issue 16): what keeps an attacker in after suspend and revoke ------
    ActionDefinition(
        id="entra.force_password_reset",
        provider="entra",
        method="force_password_reset",
        title="Force password change in Entra ID",
        description="Sets passwordProfile.forceChangePasswordNextSignIn: the user must change the "
        "password at the next sign-in. Refused for a user synced from AD (use ad.force_password_reset).",
        roles=frozenset({GLOBAL_ADMINISTRATOR}),
        permissions=_NONE,
        reversible=False,
        announces=CREDENTIAL_CHANGE,
    ),
    ActionDefinition(
        id="entra.remove_auth_methods",
        provider="entra",
        method="remove_auth_methods",
        title="Remove authentication methods in Entra ID",
        description="Deletes the user's FIDO2 keys, Microsoft Authenticator, phone and temporary access "
        "pass methods (the password stays); the result lists each one removed.",
        roles=frozenset({GLOBAL_ADMINISTRATOR}),
        permissions=_NONE,
        reversible=False,
        warning="Removed methods cannot be restored: the user registers the real ones again "
        "(the result lists what was removed).",
    ),
    ActionDefinition(
        id="entra.disable_devices",
        provider="entra",
        method="disable_devices",
        title="Disable the user's devices in Entra ID",
        description="Sets accountEnabled to false on every enabled Windows device registered to the "
        "user, so their primary refresh tokens stop working.",
        roles=frozenset({GLOBAL_ADMINISTRATOR}),
        permissions=_NONE,
        inverse="entra.enable_devices",
    ),
    ActionDefinition(
        id="entra.enable_devices",
        provider="entra",
        method="enable_devices",
        title="Enable the user's devices in Entra ID",
        description="Sets accountEnabled to true on exactly the devices the undone "
        "entra.disable_devices disabled.",
        roles=frozenset({GLOBAL_ADMINISTRATOR}),
        permissions=_NONE,
        inverse="entra.disable_devices",
    ),
    ActionDefinition(
        id="okta.suspend_user",
        provider="okta",
        method="suspend_user",
        title="Suspend user in Okta",
        description="Moves an ACTIVE Okta user to SUSPENDED: the user cannot sign in until unsuspended.",
        roles=_RESPONDERS,
        permissions=_MANAGE,
        inverse="okta.unsuspend_user",
        effect=("status", "SUSPENDED"),
        announces=ACCOUNT_DISABLED,
    ),
    ActionDefinition(
        id="okta.unsuspend_user",
        provider="okta",
        method="unsuspend_user",
        title="Unsuspend user in Okta",
        description="Moves a SUSPENDED Okta user back to ACTIVE.",
        roles=_RESPONDERS,
        permissions=_MANAGE,
        inverse="okta.suspend_user",
        effect=("status", "ACTIVE"),
        announces=ACCOUNT_ENABLED,
    ),
    ActionDefinition(
        id="okta.deactivate_user",
        provider="okta",
        method="deactivate_user",
        title="Deactivate user in Okta",
        description="Deactivates the Okta user permanently (DEPROVISIONED), for a malicious account.",
        roles=_RESPONDERS,
        permissions=_MANAGE,
        reversible=False,
        warning="Deactivation cannot be cleanly reversed: Okta removes the user's app assignments.",
        effect=("status", "DEPROVISIONED"),
        announces=ACCOUNT_DISABLED,
    ),
    # --- Okta eviction: the attacker is out (sessions, tokens, grants, factors, password, risk) ---
    ActionDefinition(
        id="okta.clear_sessions",
        provider="okta",
        method="clear_sessions",
        title="Clear Okta sessions and OAuth tokens",
        description="Ends every Okta session of the user and revokes the OpenID Connect and OAuth "
        "tokens issued to it (okta.users.manage).",
        roles=_RESPONDERS,
        permissions=_MANAGE,
        reversible=False,
        announces=SESSION_REVOKED,
    ),
    ActionDefinition(
        id="okta.revoke_grants",
        provider="okta",
        method="revoke_grants",
        title="Revoke Okta consent grants",
        description="Revokes every consent grant of the user: no app keeps acting on its behalf "
        "(okta.users.read, okta.users.manage).",
        roles=_RESPONDERS,
        permissions=_MANAGE,
        reversible=False,
    ),
    ActionDefinition(
        id="okta.reset_factors",
        provider="okta",
        method="reset_factors",
        title="Reset Okta MFA factors",
        description="Resets every enrolled MFA factor (an attacker's enrolled authenticator goes); "
        "the result lists the factors removed (okta.users.read, okta.users.manage).",
        roles=_RESPONDERS,
        permissions=_MANAGE,
        reversible=False,
        warning="Removed factors cannot be restored: the user enrolls again at the next sign-in.",
    ),
    ActionDefinition(
        id="okta.expire_password",
        provider="okta",
        method="expire_password",
        title="Expire Okta password",
        description="Moves the user to PASSWORD_EXPIRED; configured so, replaces the password by a "
        "temporary one sealed for the requester and revokes the sessions (okta.users.manage).",
        roles=_RESPONDERS,
        permissions=_MANAGE,
        reversible=False,
        warning="An expired password cannot be un-expired: the user must set a new one.",
        announces=CREDENTIAL_CHANGE,
    ),
    ActionDefinition(
        id="okta.set_risk",
        provider="okta",
        method="set_risk",
        title="Mark Okta user high risk",
        description="Sets the user's risk to HIGH in Identity Threat Protection, for the org's risk "
        "policies to act on (okta.userRisk.read, okta.userRisk.manage).",
        roles=_ADMINS,
        permissions=_MANAGE,
        inverse="okta.clear_risk",
        effect=("values.riskLevel", "HIGH"),
    ),
    ActionDefinition(
        id="okta.clear_risk",
        provider="okta",
        method="clear_risk",
        title="Restore Okta user risk",
        description="Sets the user's risk back to the level before it was marked HIGH (LOW when it "
        "had none) (okta.userRisk.read, okta.userRisk.manage).",
        roles=_ADMINS,
        permissions=_MANAGE,
        inverse="okta.set_risk",
    ),
    ActionDefinition(
        id="okta.universal_logout",
        provider="okta",
        method="universal_logout",
        title="Universal Logout from Okta",
        description="Okta's global token revocation: every token and session of the user, in Okta and "
        "in the apps that support Universal Logout (okta.universalLogout.manage; where the org "
        "offers it).",
        roles=_RESPONDERS,
        permissions=_MANAGE,
        reversible=False,
        announces=SESSION_REVOKED,
    ),
)

_BY_ID: dict[str, ActionDefinition] = {d.id: d for d in DEFINITIONS}


def get_action(action_id: str) -> ActionDefinition:
    """The definition for an id, or InvalidInput naming the known ids."""
    try:
        return _BY_ID[action_id]
    except KeyError:
        known = ", ".join(sorted(_BY_ID))
        raise InvalidInput(f"unknown action '{action_id}'; known actions: {known}") from None


def all_actions() -> Iterator[ActionDefinition]:
    """Every action type, in catalog order."""
    return iter(DEFINITIONS)


def providers() -> list[str]:
    """The providers that have at least one action, in catalog order."""
    return list(dict.fromkeys(d.provider for d in DEFINITIONS))
