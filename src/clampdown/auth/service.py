"""Sign-in: local users with argon2 passwords, API tokens, console sessions; turns any of them
into a Principal, and records every access decision that went against the caller."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import signin_event
from clampdown.auth.principal import PermissionDenied, Principal
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.errors import ClampdownError, InvalidInput, NotFound
from clampdown.permissions import ALL_PERMISSIONS, BUILTIN_ROLES
from clampdown.store.auth import AuthStore, Denial, TokenRecord, UserRecord

TOKEN_PREFIX = "cdt_"
SESSION_LIFETIME = timedelta(hours=8)
_hasher = PasswordHasher()


class Unauthenticated(ClampdownError):
    """No valid credentials: a missing, wrong, expired or revoked token or session."""

    code = "unauthenticated"


def token_hash(token: str) -> str:
    """Tokens are 256 random bits, so a plain SHA-256 is enough and cheap per request."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    """A new token: `token` is shown once and never stored."""

    id: int
    token: str
    expires_at: datetime | None


@dataclass(frozen=True)
class ConsoleSession:
    session_id: str  # the cookie value, shown once
    csrf_token: str
    expires_at: datetime


class AuthService:
    def __init__(self, store: AuthStore, clock: Clock = SYSTEM_CLOCK) -> None:
        self.store = store
        self.clock = clock

    async def _validate_roles(self, roles: frozenset[str]) -> None:
        known = set(BUILTIN_ROLES) | set(await self.store.custom_roles())
        unknown = sorted(roles - known)
        if unknown:
            raise InvalidInput(f"unknown role {', '.join(unknown)}; known roles: {', '.join(sorted(known))}")
        if not roles:
            raise InvalidInput("give at least one role")

    async def create_user(
        self, username: str, roles: frozenset[str], password: str | None, display_name: str | None = None
    ) -> UserRecord:
        """A local user; with no password the user signs in with tokens only."""
        name = username.strip()
        if not name or len(name) > 256:
            raise InvalidInput("username must be 1 to 256 characters")
        await self._validate_roles(roles)
        if password is not None and len(password) < 12:
            raise InvalidInput("password must be at least 12 characters")
        hashed = _hasher.hash(password) if password is not None else None
        return await self.store.add_user(
            name, roles, self.clock.now(), password_hash=hashed, display_name=display_name
        )

    async def define_role(
        self, name: str, permissions: frozenset[str], description: str | None = None
    ) -> None:
        """A custom role made of permissions."""
        if name in BUILTIN_ROLES:
            raise InvalidInput(f"'{name}' is a built-in role")
        unknown = sorted(permissions - ALL_PERMISSIONS)
        if unknown or not permissions:
            raise InvalidInput(
                f"unknown permission {', '.join(unknown) or '(none given)'}; "
                f"known permissions: {', '.join(sorted(ALL_PERMISSIONS))}"
            )
        await self.store.put_custom_role(name, permissions, description)

    async def principal_for(self, user: UserRecord, channel: str) -> Principal:
        """The user's effective permissions; custom roles are read only if the user has one."""
        custom = await self.store.custom_roles() if user.roles - set(BUILTIN_ROLES) else {}
        return Principal.from_roles(user.username, user.roles, custom, channel)

    async def create_token(self, username: str, name: str, lifetime: timedelta | None) -> IssuedToken:
        """A new API token for a user; the plaintext is returned here only."""
        user = await self.store.user_by_name(username)
        if user is None:
            raise NotFound(f"no user '{username}'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + lifetime if lifetime else None
        token_id = await self.store.add_token(user.id, name, token_hash(token), token[:10], now, expires)
        return IssuedToken(token_id, token, expires)

    async def list_tokens(self, username: str | None = None) -> list[TokenRecord]:
        return await self.store.list_tokens(username)

    async def revoke_token(self, token_id: int) -> None:
        await self.store.revoke_token(token_id, self.clock.now())

    async def authenticate_token(self, token: str | None, channel: str) -> Principal:
        """The principal for an API token; Unauthenticated if it is missing, unknown, expired or revoked."""
        if not token:
            raise Unauthenticated("no credentials: send 'Authorization: Bearer <token>'")
        found = await self.store.token_with_user(token_hash(token.strip()))
        now = self.clock.now()
        if found is None:
            raise Unauthenticated("invalid token")
        record, user = found
        if record.revoked_at is not None:
            raise Unauthenticated("token revoked")
        if record.expires_at is not None and record.expires_at <= now:
            raise Unauthenticated("token expired")
        if user.disabled:
            raise Unauthenticated("the token's user is disabled")
        if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
            await self.store.touch_token(record.id, now)  # at most once a minute: no write per request
        return await self.principal_for(user, channel)

    async def sign_in(self, username: str, password: str) -> tuple[UserRecord, ConsoleSession]:
        """Check a local password and open a console session."""
        user = await self.store.user_by_name(username)
        valid = False
        if user is not None and user.password_hash and not user.disabled:
            try:
                valid = _hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                valid = False
        else:
            _hasher.hash(password)  # same work for unknown users: no timing oracle on usernames
        succeeded = valid and user is not None
        await self.store.record_events([signin_event(self.clock.now(), username, succeeded, "password")])
        if not valid or user is None:
            raise Unauthenticated("wrong username or password")
        return user, await self.open_session(user)

    async def open_session(self, user: UserRecord) -> ConsoleSession:
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + SESSION_LIFETIME
        await self.store.add_session(token_hash(session_id), user.id, csrf, now, expires)
        return ConsoleSession(session_id, csrf, expires)

    async def authenticate_session(
        self, session_id: str | None, csrf_header: str | None, *, unsafe_method: bool
    ) -> Principal:
        """The principal for a console session cookie; unsafe methods must echo the CSRF token."""
        if not session_id:
            raise Unauthenticated("no credentials: send 'Authorization: Bearer <token>' or sign in")
        found = await self.store.session(token_hash(session_id))
        if found is None or found[2] <= self.clock.now():
            raise Unauthenticated("session expired: sign in again")
        user_id, csrf, _ = found
        if unsafe_method and not (csrf_header and hmac.compare_digest(csrf_header, csrf)):
            raise PermissionDenied("missing or wrong CSRF token (X-CSRF-Token header)", "CSRF token")
        user = await self.store.user_by_id(user_id)
        if user is None or user.disabled:
            raise Unauthenticated("user disabled")
        return await self.principal_for(user, "console")

    async def csrf_for(self, session_id: str) -> str | None:
        found = await self.store.session(token_hash(session_id))
        return found[1] if found else None

    async def sign_out(self, session_id: str) -> None:
        await self.store.delete_session(token_hash(session_id))

    async def record_events(self, events: list[AuditEvent]) -> None:
        """Audit events of the acts the services check here (a detection rule armed or run)."""
        await self.store.record_events(events)

    async def record_denial(
        self, principal: Principal, attempted: str, target: str | None, missing: str
    ) -> None:
        """Every denied attempt is kept, with who, where from, what and what was missing."""
        await self.store.record_denial(
            Denial(self.clock.now(), principal.username, principal.channel, attempted, target, missing)
        )


async def sso_user(
    service: AuthService, username: str, display_name: str | None, roles: frozenset[str]
) -> UserRecord:
    """The local record of a single sign-on user, created on first sign-in; roles follow the
    identity provider's groups at every sign-in."""
    user = await service.store.user_by_name(username)
    if user is None:
        return await service.store.add_user(
            username, roles, service.clock.now(), display_name=display_name, source="oidc"
        )
    if user.source != "oidc":
        raise Unauthenticated(f"'{username}' is a local user: sign in with a password")
    if user.roles != roles:
        await service.store.set_user_roles(username, roles)
        user = await service.store.user_by_name(username) or user
    return user
