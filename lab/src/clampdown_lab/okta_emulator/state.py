"""The emulated Okta org: users with Okta's statuses and lifecycle rules, and the System Log.

Transition rules follow the Okta Management API (see shared/contracts/okta/CONTRACT.md). Where
Okta documents no error code (expire/reset on SUSPENDED or DEPROVISIONED users) the emulator
answers 403 E0000038, which the OpenAPI document allows. Deactivating a DEPROVISIONED user is
404 E0000007, as a real org answers.

The org also has custom authorization servers, each with access policies whose rules set the
lifetime of the access tokens it issues (`actions.token.accessTokenLifetimeMinutes`).

Besides its status a user has what an attacker may hold: sessions and OAuth tokens (counts),
enrolled MFA factors, consent grants, a temporary password and an Identity Threat Protection risk
level. System Log event types: `user.mfa.factor.reset_all` and `user.session.end` are named in
Okta's OpenAPI document; `user.session.clear`, `app.oauth2.as.consent.revoke`, `user.risk.change`
and `user.authentication.universal_logout` are from Okta's event-type catalogue (not in the
contracts).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATUSES = (
    "ACTIVE",
    "DEPROVISIONED",
    "LOCKED_OUT",
    "PASSWORD_EXPIRED",
    "PROVISIONED",
    "RECOVERY",
    "STAGED",
    "SUSPENDED",
)
_PASSWORD_ROUNDS = 10_000  # a lab's passwords: enough to not store them plainly, cheap to check
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


class OktaApiError(Exception):
    """An error answer with Okta's code, HTTP status and summary."""

    def __init__(self, status: int, code: str, summary: str, causes: tuple[str, ...] = ()) -> None:
        super().__init__(summary)
        self.status = status
        self.code = code
        self.summary = summary
        self.causes = causes


def not_found(reference: str) -> OktaApiError:
    return OktaApiError(404, "E0000007", f"Not found: Resource not found: {reference} (User)")


def validation_failed(cause: str) -> OktaApiError:
    return OktaApiError(400, "E0000001", "Api validation failed: status", (cause,))


def not_allowed_in_status() -> OktaApiError:
    return OktaApiError(403, "E0000038", "This operation is not allowed in the user's current status.")


def okta_timestamp(epoch: float) -> str:
    """Okta's date format: YYYY-MM-DDTHH:mm:ss.SSSZ."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def stable_id(prefix: str, seed: str) -> str:
    """A 20-character Okta-style id derived from `seed`, so a re-seeded lab keeps its ids."""
    number = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:16], "big")
    chars = []
    for _ in range(20 - len(prefix)):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return prefix + "".join(chars)


@dataclass
class UserRecord:
    """One Okta user as the org stores it."""

    id: str
    status: str
    profile: dict[str, Any]
    created: float
    last_updated: float
    status_changed: float | None = None
    activated: float | None = None
    transitioning_to: str | None = None
    sessions: int = 0  # open Okta sessions, cleared by DELETE .../sessions
    oauth_tokens: int = 0  # OAuth tokens issued to the user, revoked with oauthTokens=true
    groups: list[str] = field(default_factory=list)  # names of the Okta groups the user belongs to
    password_hash: str | None = None  # for sign-in at /oauth2/v1/authorize; None: cannot sign in
    factors: list[dict[str, Any]] = field(default_factory=list)  # enrolled MFA factors (UserFactor)
    grants: list[dict[str, Any]] = field(default_factory=list)  # consent grants (OAuth2ScopeConsentGrant)
    risk_level: str = "NONE"  # Identity Threat Protection: NONE until set, then HIGH/MEDIUM/LOW
    risk_reason: str | None = None

    @property
    def login(self) -> str:
        return str(self.profile["login"])

    @property
    def display_name(self) -> str:
        return f"{self.profile.get('firstName', '')} {self.profile.get('lastName', '')}".strip()

    def set_password(self, password: str) -> None:
        salt = secrets.token_bytes(16)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PASSWORD_ROUNDS)
        self.password_hash = f"{salt.hex()}${digest.hex()}"

    def check_password(self, password: str) -> bool:
        """True if `password` is the user's; always False for a user without one."""
        if not self.password_hash:
            return False
        salt, _, expected = self.password_hash.partition("$")
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), _PASSWORD_ROUNDS)
        return hmac.compare_digest(digest.hex(), expected)

    def etag(self) -> str:
        digest = hashlib.sha1(f"{self.id}:{self.last_updated}:{self.status}".encode()).hexdigest()[:16]
        return f'W/"{digest}"'

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "profile": self.profile,
            "created": self.created,
            "last_updated": self.last_updated,
            "status_changed": self.status_changed,
            "activated": self.activated,
            "transitioning_to": self.transitioning_to,
            "sessions": self.sessions,
            "oauth_tokens": self.oauth_tokens,
            "groups": self.groups,
            "password_hash": self.password_hash,
            "factors": self.factors,
            "grants": self.grants,
            "risk_level": self.risk_level,
            "risk_reason": self.risk_reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UserRecord:
        return cls(**data)


@dataclass
class PolicyRuleRecord:
    """A rule of an authorization server's access policy: the lifetimes of the tokens it issues."""

    id: str
    name: str
    status: str  # ACTIVE or INACTIVE
    priority: int
    access_token_minutes: int  # Okta: at least 5, at most one day (1440)
    refresh_token_minutes: int = 0  # 0: unlimited
    refresh_window_minutes: int = 10080
    created: float = 0.0


@dataclass
class AccessPolicyRecord:
    """An access policy of a custom authorization server and its rules, in priority order."""

    id: str
    name: str
    status: str
    priority: int
    description: str
    created: float = 0.0
    rules: list[PolicyRuleRecord] = field(default_factory=list)


@dataclass
class AuthorizationServerRecord:
    """A custom authorization server (`/oauth2/{id}`): its audience and access policies."""

    id: str
    name: str
    description: str
    audiences: list[str]
    status: str  # ACTIVE or INACTIVE
    created: float = 0.0
    policies: list[AccessPolicyRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuthorizationServerRecord:
        policies = [
            AccessPolicyRecord(
                **{k: v for k, v in p.items() if k != "rules"},
                rules=[PolicyRuleRecord(**r) for r in p.get("rules", [])],
            )
            for p in data.get("policies", [])
        ]
        return cls(**{**data, "policies": policies})


@dataclass(frozen=True)
class Actor:
    """Who made a request: the API token's admin or the OAuth service app."""

    id: str
    type: str
    alternate_id: str
    display_name: str
    ip: str = "127.0.0.1"  # where the request came from, for the System Log's client
    user_agent: str = ""


@dataclass
class OrgState:
    """All users and System Log events of the org; saved to `state_file` after each change."""

    clock: Callable[[], float] = time.time
    state_file: Path | None = None
    users: dict[str, UserRecord] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)
    authorization_servers: dict[str, AuthorizationServerRecord] = field(default_factory=dict)
    _by_login: dict[str, str] = field(default_factory=dict, repr=False)
    # Called with (eventType, user) after each System Log event about a user (the SSF transmitter).
    listeners: list[Callable[[str, UserRecord], None]] = field(default_factory=list, repr=False)
    # What other parts of the org keep (the SSF streams and providers), as JSON, saved with it.
    attachments: dict[str, Any] = field(default_factory=dict)

    # --- users -----------------------------------------------------------------------------
    def add_user(
        self, profile: dict[str, Any], status: str = "ACTIVE", user_id: str | None = None
    ) -> UserRecord:
        """Create (or return the existing) user with this login; ids are stable per login."""
        login = str(profile["login"])
        existing = self.find_by_login(login)
        if existing is not None:
            return existing
        now = self.clock()
        record = UserRecord(
            id=user_id or stable_id("00u", login.lower()),
            status=status,
            profile={"email": login, **profile},
            created=now,
            last_updated=now,
            status_changed=now if status != "STAGED" else None,
            activated=now if status not in ("STAGED", "PROVISIONED") else None,
        )
        if status in ("ACTIVE", "PASSWORD_EXPIRED", "RECOVERY"):
            # A user who can sign in is taken to be signed in, with Okta Verify enrolled and one
            # app consented to, so clearing sessions, resetting factors and revoking grants show.
            record.sessions, record.oauth_tokens = 1, 1
            self.enroll_factor(record, "push", "OKTA", save=False)
            self.add_grant(record, "0oalabportal00000001", "okta.users.read.self", save=False)
        self.users[record.id] = record
        self._by_login[login.lower()] = record.id
        self.save()
        return record

    def seed(self, item: dict[str, Any]) -> UserRecord:
        """Add a user from a seed item: profile fields plus optional status, password, groups and id
        (default: derived from the login).

        An existing user keeps its status (seeding again must not undo an analyst's action);
        a password or groups given are set on new and existing users alike.
        """
        extras = ("status", "password", "groups", "id")
        record = self.add_user(
            {k: v for k, v in item.items() if k not in extras},
            status=str(item.get("status", "ACTIVE")),
            user_id=item.get("id"),
        )
        self.set_credentials(record, item.get("password"), item.get("groups"))
        return record

    def set_credentials(self, record: UserRecord, password: str | None, groups: list[str] | None) -> None:
        """Set the user's password and/or group names (None leaves one unchanged)."""
        if password is not None:
            record.set_password(str(password))
        if groups is not None:
            record.groups = [str(g) for g in groups]
        if password is not None or groups is not None:
            record.last_updated = self.clock()
            self.save()

    def find_by_login(self, login: str) -> UserRecord | None:
        """The user whose login is `login`, ignoring case."""
        user_id = self._by_login.get(login.lower())
        return self.users.get(user_id) if user_id else None

    def lookup(self, reference: str) -> UserRecord:
        """A user by id, login or unambiguous login shortname, as GET /api/v1/users/{id} does."""
        if reference in self.users:
            return self.users[reference]
        by_login = self.find_by_login(reference)
        if by_login is not None:
            return by_login
        short = [u for u in self.users.values() if u.login.lower().split("@")[0] == reference.lower()]
        if len(short) == 1:
            return short[0]
        raise not_found(reference)

    def _set_status(self, record: UserRecord, status: str) -> None:
        now = self.clock()
        record.status = status
        record.transitioning_to = None
        record.status_changed = now
        record.last_updated = now
        if status == "ACTIVE" and record.activated is None:
            record.activated = now

    # --- lifecycle -------------------------------------------------------------------------
    def suspend(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status != "ACTIVE" or record.transitioning_to:
            raise validation_failed(f"Cannot suspend a user that is not active (status: {record.status}).")
        self._set_status(record, "SUSPENDED")
        self.log(
            "user.lifecycle.suspend",
            "Suspend Okta user",
            record,
            actor,
            request_id,
            "core.user.config.user_status.suspended",
        )

    def unsuspend(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status != "SUSPENDED":
            raise validation_failed(
                f"Cannot unsuspend a user that is not suspended (status: {record.status})."
            )
        self._set_status(record, "ACTIVE")
        self.log(
            "user.lifecycle.unsuspend",
            "Unsuspend Okta user",
            record,
            actor,
            request_id,
            "core.user.config.user_status.unsuspended",
        )

    def begin_deactivate(self, record: UserRecord) -> None:
        """Start a deactivation: the user shows `transitioningToStatus: DEPROVISIONED` until finished."""
        if record.status == "DEPROVISIONED":
            raise not_found(record.id)  # what a real org answers, though GET still finds the user
        record.transitioning_to = "DEPROVISIONED"
        record.last_updated = self.clock()
        self.save()

    def finish_deactivate(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status == "DEPROVISIONED":
            return
        self._set_status(record, "DEPROVISIONED")
        # Deprovisioning ends every session and token the user held.
        record.sessions = 0
        record.oauth_tokens = 0
        self.log(
            "user.lifecycle.deactivate",
            "Deactivate Okta user",
            record,
            actor,
            request_id,
            "core.user.config.user_deactivated",
        )

    def activate(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status not in ("STAGED", "DEPROVISIONED"):
            raise OktaApiError(403, "E0000016", "Activation failed because the user is already active")
        self._set_status(record, "ACTIVE")
        self.log(
            "user.lifecycle.activate",
            "Activate Okta user",
            record,
            actor,
            request_id,
            "core.user.config.user_activated",
        )

    def reactivate(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status not in ("PROVISIONED", "RECOVERY"):
            raise not_allowed_in_status()
        self._set_status(record, "PROVISIONED")
        self.log(
            "user.lifecycle.reactivate",
            "Reactivate Okta user",
            record,
            actor,
            request_id,
            "core.user.config.user_reactivated",
        )

    def unlock(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status != "LOCKED_OUT":
            raise OktaApiError(403, "E0000032", "Unlock is not allowed for this user.")
        self._set_status(record, "ACTIVE")
        self.log(
            "user.account.unlock_by_admin",
            "Unlock Okta user",
            record,
            actor,
            request_id,
            "core.user.account.unlocked_by_admin",
        )

    def expire_password(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status in ("SUSPENDED", "DEPROVISIONED", "STAGED"):
            raise not_allowed_in_status()
        self._set_status(record, "PASSWORD_EXPIRED")
        self.log(
            "user.account.expire_password",
            "Expire Okta user password",
            record,
            actor,
            request_id,
            "core.user.config.password_expired",
        )

    def reset_password(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status in ("SUSPENDED", "DEPROVISIONED", "STAGED"):
            raise not_allowed_in_status()
        self._set_status(record, "RECOVERY")
        self.log(
            "user.account.reset_password",
            "Reset Okta user password",
            record,
            actor,
            request_id,
            "core.user.config.password_reset",
        )

    def clear_sessions(self, record: UserRecord, oauth_tokens: bool, actor: Actor, request_id: str) -> None:
        record.sessions = 0
        if oauth_tokens:
            record.oauth_tokens = 0
        record.last_updated = self.clock()
        self.log(
            "user.session.clear",
            "Clear user session",
            record,
            actor,
            request_id,
            "core.user_auth.session_clear",
        )

    # --- what an attacker holds: factors, grants, password, risk --------------------------------
    def enroll_factor(
        self, record: UserRecord, factor_type: str, provider: str, save: bool = True
    ) -> dict[str, Any]:
        """An ACTIVE enrolled factor (a test's, or the seed's Okta Verify)."""
        now = okta_timestamp(self.clock())
        factor = {
            "id": stable_id(
                "ufs" if factor_type == "question" else "opf",
                f"{record.id} {factor_type} {len(record.factors)}",
            ),
            "factorType": factor_type,
            "provider": provider,
            "vendorName": provider,
            "status": "ACTIVE",
            "created": now,
            "lastUpdated": now,
            "profile": {"credentialId": record.login},
        }
        record.factors.append(factor)
        if save:
            self.save()
        return factor

    def add_grant(
        self, record: UserRecord, client_id: str, scope_id: str, save: bool = True
    ) -> dict[str, Any]:
        """A consent grant the user gave an app."""
        now = okta_timestamp(self.clock())
        grant = {
            "id": stable_id("oag", f"{record.id} {client_id} {scope_id} {len(record.grants)}"),
            "clientId": client_id,
            "scopeId": scope_id,
            "issuer": "https://okta.lab.example.test",
            "status": "ACTIVE",
            "source": "END_USER",
            "userId": record.id,
            "created": now,
            "lastUpdated": now,
        }
        record.grants.append(grant)
        if save:
            self.save()
        return grant

    def reset_factors(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        if record.status == "DEPROVISIONED":
            raise not_allowed_in_status()
        if not record.factors:
            return
        record.factors = []
        record.last_updated = self.clock()
        self.log("user.mfa.factor.reset_all", "Reset all factors for user", record, actor, request_id,
                 "core.user.factor.reset_all")  # fmt: skip

    def revoke_grants(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        revoked, record.grants = record.grants, []
        for _ in revoked:
            self.log("app.oauth2.as.consent.revoke", "User consent revoked", record, actor, request_id, None)
        if not revoked:
            self.save()

    def expire_with_temp_password(
        self, record: UserRecord, revoke_sessions: bool, actor: Actor, request_id: str
    ) -> str:
        """A new temporary password (returned once), PASSWORD_EXPIRED, sessions revoked if asked."""
        if record.status in ("SUSPENDED", "DEPROVISIONED", "STAGED"):
            raise not_allowed_in_status()
        temporary = "".join(secrets.choice(_BASE62) for _ in range(12))
        record.set_password(temporary)
        if revoke_sessions:
            record.sessions = 0
        self.expire_password(record, actor, request_id)
        return temporary

    def set_risk(
        self, record: UserRecord, level: str, reason: str | None, actor: Actor, request_id: str
    ) -> bool:
        """Upsert the user's risk; True if the risk object was created (it was NONE)."""
        created = record.risk_level == "NONE"
        record.risk_level, record.risk_reason = level, reason or "override.by.admin"
        self.log("user.risk.change", f"User risk level changed to {level}", record, actor, request_id, None)
        return created

    def universal_logout(self, record: UserRecord, actor: Actor, request_id: str) -> None:
        """Global token revocation: every session and token of the user, here and in the apps."""
        record.sessions = 0
        record.oauth_tokens = 0
        record.last_updated = self.clock()
        self.log("user.authentication.universal_logout", "Universal Logout", record, actor, request_id, None)

    def delete(self, record: UserRecord, actor: Actor, request_id: str) -> bool:
        """DELETE /api/v1/users/{id}: deactivates first; a second call deletes. True if deleted."""
        if record.status != "DEPROVISIONED":
            record.transitioning_to = "DEPROVISIONED"
            self.finish_deactivate(record, actor, request_id)
            return False
        del self.users[record.id]
        self._by_login.pop(record.login.lower(), None)
        self.log("user.lifecycle.delete.completed", "Delete Okta user", record, actor, request_id, None)
        return True

    # --- custom authorization servers -------------------------------------------------------
    def add_authorization_server(self, item: dict[str, Any]) -> AuthorizationServerRecord:
        """Create (or return the existing) custom authorization server named `item["name"]`, with
        its policies and rules: `{"name", "audiences", "status", "description", "policies": [{"name",
        "status", "description", "rules": [{"name", "status", "accessTokenLifetimeMinutes"}]}]}`.
        Ids are stable per name; an existing server is left as it is (seeding again changes nothing)."""
        name = str(item["name"])
        for existing in self.authorization_servers.values():
            if existing.name == name:
                return existing
        now = self.clock()
        server = AuthorizationServerRecord(
            id=stable_id("aus", f"authorization server {name}"),
            name=name,
            description=str(item.get("description") or f"{name} authorization server"),
            audiences=[str(a) for a in item.get("audiences") or [f"api://{name}"]],
            status=_lifecycle_status(item.get("status", "ACTIVE")),
            created=now,
        )
        for p_index, policy in enumerate(item.get("policies") or [], start=1):
            policy_name = str(policy["name"])
            record = AccessPolicyRecord(
                id=stable_id("00p", f"{server.id} policy {policy_name}"),
                name=policy_name,
                status=_lifecycle_status(policy.get("status", "ACTIVE")),
                priority=p_index,
                description=str(policy.get("description") or policy_name),
                created=now,
            )
            for r_index, rule in enumerate(policy.get("rules") or [], start=1):
                minutes = int(rule.get("accessTokenLifetimeMinutes", 60))
                if not 5 <= minutes <= 1440:
                    raise ValueError("accessTokenLifetimeMinutes: Okta allows 5 minutes to one day")
                record.rules.append(
                    PolicyRuleRecord(
                        id=stable_id("0pr", f"{record.id} rule {rule['name']}"),
                        name=str(rule["name"]),
                        status=_lifecycle_status(rule.get("status", "ACTIVE")),
                        priority=r_index,
                        access_token_minutes=minutes,
                        created=now,
                    )
                )
            server.policies.append(record)
        self.authorization_servers[server.id] = server
        self.save()
        return server

    # --- System Log ------------------------------------------------------------------------
    def log(
        self,
        event_type: str,
        message: str,
        record: UserRecord,
        actor: Actor,
        request_id: str,
        legacy: str | None,
    ) -> None:
        """Record one System Log event for a change made to `record`, then persist the org."""
        target = _user_target(record)
        self._append_event(event_type, message, actor, request_id, [target], {"result": "SUCCESS"}, legacy)
        for listener in self.listeners:
            listener(event_type, record)

    def log_security_event_received(self, actor: Actor, record: UserRecord | None, request_id: str) -> None:
        """security.events.provider.receive_event: a provider published a SET the org accepted."""
        targets = [] if record is None else [_user_target(record)]
        self._append_event(
            "security.events.provider.receive_event",
            "Security events provider published a security event",
            actor,
            request_id,
            targets,
            {"result": "SUCCESS"},
            None,
        )

    def log_sign_in(
        self,
        login: str,
        record: UserRecord | None,
        reason: str | None,
        request_id: str,
        ip: str = "127.0.0.1",
        user_agent: str = "",
    ) -> None:
        """user.session.start: SUCCESS when `reason` is None, else FAILURE with that reason.

        As on Okta, the actor is the person signing in (by the login they typed when unknown).
        """
        actor = Actor(
            record.id if record else "unknown",
            "User",
            record.login if record else login,
            record.display_name if record else "unknown",
            ip,
            user_agent,
        )
        outcome: dict[str, Any] = {"result": "SUCCESS" if reason is None else "FAILURE"}
        if reason is not None:
            outcome["reason"] = reason
        legacy = "core.user_auth.login_success" if reason is None else "core.user_auth.login_failed"
        self._append_event("user.session.start", "User login to Okta", actor, request_id, [], outcome, legacy)

    def _append_event(
        self,
        event_type: str,
        message: str,
        actor: Actor,
        request_id: str,
        targets: list[dict[str, Any]],
        outcome: dict[str, Any],
        legacy: str | None,
    ) -> None:
        published = self.clock()
        # Fields Okta sends as null are left out: the OpenAPI document declares them not nullable.
        event: dict[str, Any] = {
            "uuid": str(uuid.uuid4()),
            "published": okta_timestamp(published),
            "eventType": event_type,
            "displayMessage": message,
            "severity": "INFO" if outcome["result"] == "SUCCESS" else "WARN",
            "version": "0",
            "actor": {
                "id": actor.id,
                "type": actor.type,
                "alternateId": actor.alternate_id,
                "displayName": actor.display_name,
            },
            "client": {
                "userAgent": {"rawUserAgent": actor.user_agent, "os": "Unknown", "browser": "UNKNOWN"},
                "zone": "null",
                "device": "Unknown",
                "ipAddress": actor.ip,
            },
            "outcome": outcome,
            "target": targets,
            "transaction": {"type": "WEB", "id": request_id, "detail": {}},
            "debugContext": {"debugData": {"requestId": request_id}},
            "authenticationContext": {"authenticationStep": 0, "externalSessionId": "unknown"},
            "securityContext": {},
            "request": {"ipChain": [{"ip": actor.ip, "version": "V4"}]},
            "_epoch": published,  # private: for since/until filtering; stripped from answers
        }
        if legacy:
            event["legacyEventType"] = legacy
        self.logs.append(event)
        self.save()

    def clear(self) -> None:
        """Forget every user and event (tests start each case from an empty org)."""
        self.users.clear()
        self._by_login.clear()
        self.logs.clear()
        self.authorization_servers.clear()
        self.save()

    # --- persistence -----------------------------------------------------------------------
    def save(self) -> None:
        if self.state_file is None:
            return
        data = {
            "users": [u.to_json() for u in self.users.values()],
            "logs": self.logs,
            "authorization_servers": [a.to_json() for a in self.authorization_servers.values()],
            "attachments": self.attachments,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, state_file: Path, clock: Callable[[], float] = time.time) -> OrgState:
        """The org saved in `state_file`, or an empty org that will be saved there."""
        state = cls(clock=clock, state_file=state_file)
        if state_file.is_file():
            data = json.loads(state_file.read_text(encoding="utf-8"))
            for raw in data.get("users", []):
                record = UserRecord.from_json(raw)
                if record.transitioning_to == "DEPROVISIONED":
                    # A deactivation cut short by a restart: Okta would have finished it.
                    record.status, record.transitioning_to = "DEPROVISIONED", None
                state.users[record.id] = record
                state._by_login[record.login.lower()] = record.id
            state.logs = list(data.get("logs", []))
            for raw in data.get("authorization_servers", []):
                server = AuthorizationServerRecord.from_json(raw)
                state.authorization_servers[server.id] = server
            state.attachments = dict(data.get("attachments", {}))
        return state


def _user_target(record: UserRecord) -> dict[str, Any]:
    """A System Log target naming a user."""
    return {"id": record.id, "type": "User", "alternateId": record.login, "displayName": record.display_name}


def _lifecycle_status(value: object) -> str:
    if value not in ("ACTIVE", "INACTIVE"):
        raise ValueError(f"status must be ACTIVE or INACTIVE, not {value!r}")
    return str(value)


def new_error_id() -> str:
    """An errorId / request id shaped like Okta's."""
    return "oae" + "".join(secrets.choice(_BASE62) for _ in range(22))
