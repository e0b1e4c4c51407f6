"""The emulated tenant's state: users, risky users, sign-ins, app registrations, what eviction
acts on (directory role memberships, registered devices and authentication methods) and the
token lifetime policies (the organization default sets the lifetime of the tokens it issues).

Kept in memory and, for the lab, saved to a JSON file so object ids stay stable across restarts.
Ids are derived from the UPN (uuid5), so a re-seeded lab gets the same ids too.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clampdown_lab.people import LAB_DOMAIN, DemoPerson

_ID_NAMESPACE = uuid.UUID("5b0c9b8e-4c39-4d55-9b53-3f2f0f6a1c11")


def tenant_id_for(domain: str) -> str:
    """The stable tenant id of the lab tenant whose verified domain is `domain`."""
    return str(uuid.uuid5(_ID_NAMESPACE, "tenant:" + domain))


LAB_TENANT_ID = tenant_id_for(LAB_DOMAIN)

# Application permissions (app roles) an emulated app registration can hold.
ALL_ROLES = (
    "User.Read.All",
    "User.ReadWrite.All",
    "User.EnableDisableAccount.All",
    "User.RevokeSessions.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
    "IdentityRiskyUser.Read.All",
    "IdentityRiskyUser.ReadWrite.All",
    "AuditLog.Read.All",
    "User-PasswordProfile.ReadWrite.All",
    "UserAuthenticationMethod.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "Device.Read.All",
    "Device.ReadWrite.All",
    "Policy.Read.All",
    "Policy.ReadWrite.ApplicationConfiguration",
)
# Built-in directory roles by display name, with their documented role template ids.
DIRECTORY_ROLES = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814",
    "Privileged Authentication Administrator": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Authentication Administrator": "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Cloud Device Administrator": "7698a772-787b-4ac8-901f-60d6b08affd2",
    "Directory Readers": "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",
}
# Roles whose holders Entra ID protects: only a Privileged Authentication Administrator or a
# Global Administrator may disable them or change their password (privileged-user protection).
PRIVILEGED_ROLES = frozenset(
    {
        "Global Administrator",
        "Privileged Role Administrator",
        "Privileged Authentication Administrator",
        "Security Administrator",
        "User Administrator",
        "Authentication Administrator",
        "Helpdesk Administrator",
    }
)
PASSWORD_METHOD_ID = "28c10230-6103-485e-b985-444c60001490"  # every user's password method


# Authentication method navigation properties the emulator serves, with their @odata.type.
METHOD_KINDS = {
    "fido2Methods": "#microsoft.graph.fido2AuthenticationMethod",
    "microsoftAuthenticatorMethods": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethod",
    "phoneMethods": "#microsoft.graph.phoneAuthenticationMethod",
    "temporaryAccessPassMethods": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
}


# A .NET TimeSpan as token lifetime policies write it: [d.]hh:mm:ss[.fffffff].
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.\d+)?")


def timespan(text: str) -> timedelta:
    """A TimeSpan string ("02:00:00", "1.00:00:00") as a timedelta; ValueError if malformed."""
    found = _TIMESPAN.fullmatch(text.strip())
    if found is None:
        raise ValueError(f"'{text}' is not a TimeSpan ([d.]hh:mm:ss)")
    days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def access_token_lifetime(definition: list[str]) -> timedelta | None:
    """The AccessTokenLifetime a tokenLifetimePolicy's `definition` sets (None: it sets none);
    ValueError if a definition string is not the documented JSON."""
    for text in definition:
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ValueError(f"the policy definition {text[:80]!r} is not JSON") from None
        body = parsed.get("TokenLifetimePolicy") if isinstance(parsed, dict) else None
        if not isinstance(body, dict):
            raise ValueError("a token lifetime policy definition holds a 'TokenLifetimePolicy' object")
        lifetime = body.get("AccessTokenLifetime")
        if lifetime is not None:
            return timespan(str(lifetime))
    return None


def object_id(kind: str, key: str) -> str:
    """A stable object id for a user, app or sign-in named by `key`."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{key.lower()}"))


def iso(moment: datetime) -> str:
    """Graph's DateTimeOffset form: UTC with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TenantClock:
    """Wall-clock time plus an offset, so tests can move the tenant's time (token expiry)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class UserRecord:
    """One directory user; field names follow Graph's user resource."""

    id: str
    userPrincipalName: str
    displayName: str
    givenName: str | None = None
    surname: str | None = None
    mail: str | None = None
    jobTitle: str | None = None
    department: str | None = None
    accountEnabled: bool = True
    createdDateTime: str = ""
    signInSessionsValidFromDateTime: str = ""
    onPremisesSyncEnabled: bool | None = None
    onPremisesSamAccountName: str | None = None
    onPremisesSecurityIdentifier: str | None = None
    onPremisesDomainName: str | None = None
    onPremisesUserPrincipalName: str | None = None
    onPremisesImmutableId: str | None = None
    userType: str = "Member"
    # forceChangePasswordNextSignIn(WithMfa); a password set through PATCH is never kept.
    passwordProfile: dict[str, Any] | None = None


@dataclass
class DeviceRecord:
    """One device object; field names follow Graph's device resource. `registeredUsers` holds the
    object ids of the users it is registered to (a navigation property, never serialized as is)."""

    id: str
    deviceId: str
    displayName: str
    operatingSystem: str = "Windows"
    operatingSystemVersion: str = "10.0.22631"
    trustType: str = "Workplace"
    accountEnabled: bool = True
    registrationDateTime: str = ""
    approximateLastSignInDateTime: str | None = None
    isCompliant: bool | None = None
    isManaged: bool | None = None
    registeredUsers: list[str] = field(default_factory=list)


@dataclass
class AuthMethodRecord:
    """One registered authentication method of a user. `kind` is the navigation property it lives
    under (fido2Methods, microsoftAuthenticatorMethods, phoneMethods, temporaryAccessPassMethods);
    `properties` the type's own fields (displayName, phoneNumber, ...)."""

    id: str
    kind: str
    createdDateTime: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class RiskRecord:
    """Identity Protection's view of one user; absent for a user never at risk."""

    id: str
    userPrincipalName: str
    userDisplayName: str
    riskLevel: str = "none"
    riskState: str = "none"
    riskDetail: str = "none"
    riskLastUpdatedDateTime: str = ""
    isDeleted: bool = False
    isProcessing: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TokenLifetimePolicyRecord:
    """One tokenLifetimePolicy; field names follow Graph's resource. `definition` holds JSON
    strings like {"TokenLifetimePolicy":{"Version":1,"AccessTokenLifetime":"02:00:00"}}."""

    id: str
    displayName: str
    definition: list[str]
    isOrganizationDefault: bool = False
    description: str | None = None
    deletedDateTime: str | None = None


@dataclass
class AppRecord:
    """An app registration: its credentials and granted application permissions."""

    client_id: str
    display_name: str
    roles: list[str]
    secrets: list[str] = field(default_factory=list)
    certificates: list[str] = field(default_factory=list)  # PEM, public part only
    # Directory roles assigned to the app's service principal (display names of DIRECTORY_ROLES).
    directory_roles: list[str] = field(default_factory=list)


@dataclass
class Tenant:
    """The whole emulated tenant. All mutation happens on the server's event loop thread."""

    tenant_id: str = LAB_TENANT_ID
    domain: str = LAB_DOMAIN
    users: dict[str, UserRecord] = field(default_factory=dict)
    risky: dict[str, RiskRecord] = field(default_factory=dict)
    sign_ins: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    apps: dict[str, AppRecord] = field(default_factory=dict)
    devices: dict[str, DeviceRecord] = field(default_factory=dict)
    auth_methods: dict[str, list[AuthMethodRecord]] = field(default_factory=dict)  # by user id
    role_members: dict[str, list[str]] = field(default_factory=dict)  # user id -> role names
    token_lifetime_policies: dict[str, TokenLifetimePolicyRecord] = field(default_factory=dict)
    clock: TenantClock = field(default_factory=TenantClock)
    _upn_index: dict[str, str] = field(default_factory=dict)

    def reset_directory(self) -> None:
        """Forget every user, risk record, sign-in, device, method, role membership and token
        lifetime policy (the apps stay): a blank directory."""
        self.users.clear()
        self.risky.clear()
        self.sign_ins.clear()
        self.devices.clear()
        self.auth_methods.clear()
        self.role_members.clear()
        self.token_lifetime_policies.clear()
        self._upn_index.clear()

    # -- token lifetime policies -------------------------------------------------------------
    def add_token_lifetime_policy(
        self, display_name: str, definition: list[str], is_organization_default: bool = False
    ) -> TokenLifetimePolicyRecord:
        """Create a policy; ValueError for a malformed definition or a second organization default."""
        lifetime = access_token_lifetime(definition)
        if lifetime is not None and not timedelta(minutes=10) <= lifetime <= timedelta(days=1):
            raise ValueError("AccessTokenLifetime must lie between 00:10:00 and 1.00:00:00")
        if is_organization_default and self.default_token_lifetime_policy() is not None:
            raise ValueError("the tenant already has an organization default token lifetime policy")
        policy = TokenLifetimePolicyRecord(
            id=str(uuid.uuid4()),
            displayName=display_name,
            definition=list(definition),
            isOrganizationDefault=is_organization_default,
        )
        self.token_lifetime_policies[policy.id] = policy
        return policy

    def default_token_lifetime_policy(self) -> TokenLifetimePolicyRecord | None:
        return next((p for p in self.token_lifetime_policies.values() if p.isOrganizationDefault), None)

    def access_token_lifetime(self) -> timedelta | None:
        """The access-token lifetime the organization default policy sets (None: Entra's default)."""
        policy = self.default_token_lifetime_policy()
        return access_token_lifetime(policy.definition) if policy is not None else None

    # -- what eviction acts on ---------------------------------------------------------------
    def assign_role(self, user: UserRecord, role: str) -> None:
        """Make `user` a member of the built-in directory role `role`."""
        if role not in DIRECTORY_ROLES:
            raise ValueError(f"unknown directory role {role!r}; known: {', '.join(DIRECTORY_ROLES)}")
        held = self.role_members.setdefault(user.id, [])
        if role not in held:
            held.append(role)

    def is_privileged(self, user: UserRecord) -> bool:
        """Whether `user` holds a role Entra ID's privileged-user protection covers."""
        return any(role in PRIVILEGED_ROLES for role in self.role_members.get(user.id, []))

    def register_device(self, user: UserRecord, display_name: str, **fields: Any) -> DeviceRecord:
        """A device registered to `user` (as a workplace join or an Entra join makes one)."""
        device = DeviceRecord(
            id=object_id("device", f"{user.id}:{display_name}"),
            deviceId=object_id("device-id", f"{user.id}:{display_name}"),
            displayName=display_name,
            registrationDateTime=iso(self.clock.now()),
            registeredUsers=[user.id],
            **fields,
        )
        self.devices[device.id] = device
        return device

    def add_auth_method(
        self, user: UserRecord, kind: str, created: datetime | None = None, **properties: Any
    ) -> AuthMethodRecord:
        """Register an authentication method of `kind` for `user`, created at `created` (now)."""
        if kind not in METHOD_KINDS:
            raise ValueError(f"unknown authentication method kind {kind!r}; known: {', '.join(METHOD_KINDS)}")
        method = AuthMethodRecord(
            id=str(uuid.uuid4()),
            kind=kind,
            createdDateTime=iso(created or self.clock.now()),
            properties=properties,
        )
        self.auth_methods.setdefault(user.id, []).append(method)
        return method

    # -- users -------------------------------------------------------------------------------
    def add_user(self, user: UserRecord) -> UserRecord:
        """Insert or replace a user, keeping the UPN index in step."""
        old = self.users.get(user.id)
        if old is not None:
            self._upn_index.pop(old.userPrincipalName.lower(), None)
        now = iso(self.clock.now())
        user.createdDateTime = user.createdDateTime or now
        user.signInSessionsValidFromDateTime = user.signInSessionsValidFromDateTime or user.createdDateTime
        self.users[user.id] = user
        self._upn_index[user.userPrincipalName.lower()] = user.id
        return user

    def find_user(self, key: str) -> UserRecord | None:
        """A user by object id or by userPrincipalName (case-insensitive), as Graph's {id} accepts."""
        user = self.users.get(key.lower()) or self.users.get(key)
        if user is not None:
            return user
        user_id = self._upn_index.get(key.lower())
        return self.users.get(user_id) if user_id else None

    def add_person(self, person: DemoPerson, on_premises: dict[str, str] | None = None) -> UserRecord:
        """Create (or refresh) a demo person with the stable id derived from the UPN."""
        # Object ids are unique across tenants: a person in two (a migrated account) has two.
        key = person.upn if self.tenant_id == LAB_TENANT_ID else f"{self.tenant_id}/{person.upn}"
        user = UserRecord(
            id=object_id("user", key),
            userPrincipalName=person.upn,
            displayName=person.display_name,
            givenName=person.given_name,
            surname=person.surname,
            mail=person.upn,
            jobTitle=person.title,
            department=person.department,
        )
        existing = self.users.get(user.id)
        if existing is not None:
            user.accountEnabled = existing.accountEnabled
            user.createdDateTime = existing.createdDateTime
            user.signInSessionsValidFromDateTime = existing.signInSessionsValidFromDateTime
        if on_premises:
            user.onPremisesSyncEnabled = True
            user.onPremisesSecurityIdentifier = on_premises.get("objectSid")
            user.onPremisesSamAccountName = on_premises.get("sAMAccountName", person.username)
            user.onPremisesDomainName = self.domain
            user.onPremisesUserPrincipalName = person.upn
            if on_premises.get("objectGUID"):
                # Entra Connect's default source anchor: the base64 of the objectGUID's bytes.
                guid = uuid.UUID(on_premises["objectGUID"])
                user.onPremisesImmutableId = base64.b64encode(guid.bytes_le).decode()
        elif existing is not None and existing.onPremisesSyncEnabled:
            # Re-seeding without the AD link keeps the link made earlier.
            for name in (
                "onPremisesSyncEnabled",
                "onPremisesSecurityIdentifier",
                "onPremisesSamAccountName",
                "onPremisesDomainName",
                "onPremisesUserPrincipalName",
                "onPremisesImmutableId",
            ):
                setattr(user, name, getattr(existing, name))
        return self.add_user(user)

    def directory_sync(self, on_premises_enabled: dict[str, bool]) -> list[str]:
        """One Entra Connect sync cycle: each synced user takes accountEnabled from its AD account
        (by sAMAccountName), undoing a cloud-only suspend. The ids of users it changed."""
        changed = []
        for user in self.users.values():
            wanted = on_premises_enabled.get(user.onPremisesSamAccountName or "")
            if user.onPremisesSyncEnabled and wanted is not None and user.accountEnabled != wanted:
                user.accountEnabled = wanted
                changed.append(user.id)
        return changed

    # -- risk --------------------------------------------------------------------------------
    def set_risk(self, user: UserRecord, level: str, state: str, detail: str, initiated_by: str) -> None:
        """Record a risk change and its history item, as Identity Protection does."""
        now = iso(self.clock.now())
        record = self.risky.get(user.id) or RiskRecord(
            id=user.id, userPrincipalName=user.userPrincipalName, userDisplayName=user.displayName
        )
        record.riskLevel, record.riskState, record.riskDetail = level, state, detail
        record.riskLastUpdatedDateTime = now
        record.history.append(
            {
                "id": str(uuid.uuid4()),
                "userId": user.id,
                "initiatedBy": initiated_by,
                "activity": {"detail": detail, "riskEventTypes": []},
                "riskLevel": level,
                "riskState": state,
                "riskDetail": detail,
                "riskLastUpdatedDateTime": now,
                "userPrincipalName": user.userPrincipalName,
                "userDisplayName": user.displayName,
                "isDeleted": False,
                "isProcessing": False,
            }
        )
        self.risky[user.id] = record

    # -- sign-ins ----------------------------------------------------------------------------
    def record_sign_in(
        self,
        user: UserRecord,
        *,
        ip_address: str,
        app_display_name: str = "Office 365",
        city: str = "Paris",
        country: str = "FR",
        at: datetime | None = None,
        session_issued_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Append a sign-in as Entra ID logs it; it fails when the account is disabled or the
        presented session predates the user's revocation time."""
        when = at or self.clock.now()
        valid_from = datetime.fromisoformat(user.signInSessionsValidFromDateTime.replace("Z", "+00:00"))
        error_code, reason = 0, None
        if not user.accountEnabled:
            error_code, reason = 50057, "User account is disabled."
        elif session_issued_at is not None and session_issued_at < valid_from:
            error_code, reason = 50133, "Session is invalid due to expiration or recent password change."
        risk = self.risky.get(user.id)
        entry = {
            "id": str(uuid.uuid4()),
            "createdDateTime": iso(when),
            "userDisplayName": user.displayName,
            "userPrincipalName": user.userPrincipalName,
            "userId": user.id,
            "appId": object_id("app", app_display_name),
            "appDisplayName": app_display_name,
            "ipAddress": ip_address,
            "clientAppUsed": "Browser",
            "correlationId": str(uuid.uuid4()),
            "conditionalAccessStatus": "notApplied",
            "isInteractive": True,
            "riskDetail": "none",
            "riskLevelAggregated": risk.riskLevel if risk else "none",
            "riskLevelDuringSignIn": "none",
            "riskState": risk.riskState if risk else "none",
            "riskEventTypes_v2": [],
            "resourceDisplayName": "Microsoft Graph",
            "resourceId": "00000003-0000-0000-c000-000000000000",
            "status": {"errorCode": error_code, "failureReason": reason, "additionalDetails": None},
            "deviceDetail": {
                "deviceId": "",
                "displayName": None,
                "operatingSystem": "Windows 10",
                "browser": "Edge 120.0",
                "isCompliant": False,
                "isManaged": False,
                "trustType": None,
            },
            "location": {"city": city, "state": None, "countryOrRegion": country, "geoCoordinates": None},
            "appliedConditionalAccessPolicies": [],
        }
        self.sign_ins.append(entry)
        return entry

    # -- persistence -------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A snapshot safe to serialize in another thread: records are copied (shallow copies
        suffice, history and sign-in entries are never changed once written)."""
        return {
            "tenant_id": self.tenant_id,
            "domain": self.domain,
            "users": [dict(vars(u)) for u in self.users.values()],
            "risky": [dict(vars(r), history=list(r.history)) for r in self.risky.values()],
            "sign_ins": list(self.sign_ins),
            "apps": [asdict(a) for a in self.apps.values()],
            "devices": [asdict(d) for d in self.devices.values()],
            "auth_methods": {u: [asdict(m) for m in ms] for u, ms in self.auth_methods.items()},
            "role_members": {u: list(rs) for u, rs in self.role_members.items()},
            "token_lifetime_policies": [
                dict(vars(p), definition=list(p.definition)) for p in self.token_lifetime_policies.values()
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tenant:
        tenant = cls(tenant_id=data["tenant_id"], domain=data["domain"])
        for raw in data.get("users", []):
            tenant.add_user(UserRecord(**raw))
        tenant.risky = {r["id"]: RiskRecord(**r) for r in data.get("risky", [])}
        tenant.sign_ins = list(data.get("sign_ins", []))
        tenant.apps = {a["client_id"]: AppRecord(**a) for a in data.get("apps", [])}
        tenant.devices = {d["id"]: DeviceRecord(**d) for d in data.get("devices", [])}
        tenant.auth_methods = {
            u: [AuthMethodRecord(**m) for m in ms] for u, ms in data.get("auth_methods", {}).items()
        }
        tenant.role_members = {u: list(rs) for u, rs in data.get("role_members", {}).items()}
        tenant.token_lifetime_policies = {
            p["id"]: TokenLifetimePolicyRecord(**p) for p in data.get("token_lifetime_policies", [])
        }
        return tenant

    def save(self, path: Path) -> None:
        """Write the state atomically (a crash never leaves half a file)."""
        write_snapshot(self.to_json(), path)

    @classmethod
    def load(cls, path: Path) -> Tenant:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


def write_snapshot(snapshot: dict[str, Any], path: Path) -> None:
    """Write a `Tenant.to_json` snapshot atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot), encoding="utf-8")
    tmp.replace(path)
