"""Sign-in: local users with argon2 passwords, API tokens, console sessions; turns any of them
into a Principal, and records every access decision that went against the caller."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName, access_event, signin_event
from clampdown.auth.compare import same_secret
from clampdown.auth.principal import PermissionDenied, Principal
from clampdown.auth.throttle import AttemptKeys, SigninThrottle
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import SigninSettings
from clampdown.errors import ClampdownError, Conflict, InvalidInput, NotFound
from clampdown.permissions import ALL_PERMISSIONS, BUILTIN_ROLES, listed_scope
from clampdown.store.auth import AuthStore, Denial, SessionRecord, TokenRecord, UserRecord

TOKEN_PREFIX = "cdt_"
SESSION_LIFETIME = timedelta(hours=8)
USERNAME_KEY = "username-hash"  # the server key's name when no session secret is configured
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


@dataclass(frozen=True)
class Actor:
    """Who changes access, for the audit trail: a name, the channel (cli, api, console, sso) and
    where from (the client's address, or the host a command ran on)."""

    name: str
    channel: str
    source: str | None = None


# The `clampdown users|tokens|roles` commands act with the database's authority.
DATABASE_ADMINISTRATOR = Actor("database administrator", "cli")
# Checks a console session against the identity provider; the user as they are now.
SessionRecheck = Callable[[SessionRecord, UserRecord], Awaitable[UserRecord]]


class AuthService:
    def __init__(
        self,
        store: AuthStore,
        clock: Clock = SYSTEM_CLOCK,
        *,
        signin: SigninSettings | None = None,
        secret: bytes | None = None,
        directories: frozenset[str] | None = None,
    ) -> None:
        self.store = store
        # The configured directories (provider sections) a scope may name; None: not checked.
        self.directories = directories
        self.clock = clock
        self.throttle = SigninThrottle(store, signin or SigninSettings(), clock)
        self._username_key = secret
        # Set when single sign-on is configured (auth.sso_access): sessions of SSO users are
        # checked with the identity provider every sso.recheck_seconds.
        self.recheck: SessionRecheck | None = None

    async def _record(self, *events: AuditEvent) -> None:
        await self.store.record_events(list(events))

    def event(self, name: EventName, by: Actor, subject: str | None, **data: object) -> AuditEvent:
        """An access change by `by`, at this service's clock's now."""
        return access_event(name, self.clock.now(), by.name, subject, by.channel, by.source, **data)

    async def username_digest(self, username: str) -> str:
        """A keyed hash of a username: the same typed name gives the same digest (attempts can be
        correlated), yet the audit trail does not reveal what was typed."""
        if self._username_key is None:
            self._username_key = (await self.store.server_key(USERNAME_KEY)).encode()
        mac = hmac.new(self._username_key, b"clampdown username\x00" + username.encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    async def _validate_roles(self, roles: frozenset[str]) -> None:
        known = set(BUILTIN_ROLES) | set(await self.store.custom_roles())
        unknown = sorted(roles - known)
        if unknown:
            raise InvalidInput(f"unknown role {', '.join(unknown)}; known roles: {', '.join(sorted(known))}")
        if not roles:
            raise InvalidInput("give at least one role")

    def _validate_scope(self, scope: frozenset[str] | None) -> None:
        if scope is None:
            return
        if not scope:
            raise InvalidInput("give at least one directory, or none for access to every directory")
        unknown = sorted(scope - self.directories) if self.directories is not None else []
        if unknown:
            known = ", ".join(sorted(self.directories or ())) or "(none configured)"
            raise InvalidInput(f"unknown directory {', '.join(unknown)}; configured directories: {known}")

    async def create_user(
        self,
        username: str,
        roles: frozenset[str],
        password: str | None,
        display_name: str | None = None,
        *,
        scope: frozenset[str] | None = None,
        by: Actor = DATABASE_ADMINISTRATOR,
    ) -> UserRecord:
        """A local user; with no password the user signs in with tokens only. With a `scope` their
        roles hold in those directories only."""
        name = username.strip()
        if not name or len(name) > 256:
            raise InvalidInput("username must be 1 to 256 characters")
        await self._validate_roles(roles)
        self._validate_scope(scope)
        if password is not None and len(password) < 12:
            raise InvalidInput("password must be at least 12 characters")
        hashed = _hasher.hash(password) if password is not None else None
        user = await self.store.add_user(
            name, roles, self.clock.now(), password_hash=hashed, display_name=display_name, scope=scope
        )
        await self._record(
            self.event(
                EventName.USER_CREATED,
                by,
                name,
                roles=sorted(roles),
                scope=listed_scope(scope),
                source_of_user="local",
                password=password is not None,
            )
        )
        return user

    async def set_user_roles(
        self, username: str, roles: frozenset[str], *, by: Actor = DATABASE_ADMINISTRATOR
    ) -> UserRecord:
        """Replace a local user's roles (a single sign-on user's roles follow the provider's groups)."""
        user = await self.store.user_by_name(username)
        if user is None:
            raise NotFound(f"no user '{username}'")
        if user.source != "local":
            raise Conflict(f"'{username}' signs in with single sign-on: their roles follow sso.role_mapping")
        await self._validate_roles(roles)
        await self.store.set_user_roles(username, roles)
        await self._record(
            self.event(
                EventName.USER_ROLES_CHANGED, by, username, before=sorted(user.roles), roles=sorted(roles)
            )
        )
        return await self.store.user_by_name(username) or user

    async def set_user_scope(
        self, username: str, scope: frozenset[str] | None, *, by: Actor = DATABASE_ADMINISTRATOR
    ) -> UserRecord:
        """Limit a user's roles to some directories (None: every directory). It takes effect on
        their next request: the scope is read with the user, never cached in a session or token."""
        user = await self.store.user_by_name(username)
        if user is None:
            raise NotFound(f"no user '{username}'")
        self._validate_scope(scope)
        await self.store.set_user_scope(username, scope)
        event = self.event(
            EventName.USER_SCOPE_CHANGED,
            by,
            username,
            before=listed_scope(user.scope),
            scope=listed_scope(scope),
        )
        await self._record(event)
        return await self.store.user_by_name(username) or user

    async def define_role(
        self,
        name: str,
        permissions: frozenset[str],
        description: str | None = None,
        *,
        by: Actor = DATABASE_ADMINISTRATOR,
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
        before = await self.store.put_custom_role(name, permissions, description)
        changed = {"before": sorted(before)} if before is not None else {}
        event = EventName.ROLE_CREATED if before is None else EventName.ROLE_CHANGED
        await self._record(self.event(event, by, name, permissions=sorted(permissions), **changed))

    async def delete_role(self, name: str, *, by: Actor = DATABASE_ADMINISTRATOR) -> None:
        """Delete a custom role no user holds any more."""
        if name in BUILTIN_ROLES:
            raise InvalidInput(f"'{name}' is a built-in role")
        holders = await self.store.users_with_role(name)
        if holders:
            raise Conflict(f"role '{name}' is still held by {', '.join(holders)}: change their roles first")
        before = await self.store.delete_custom_role(name)
        await self._record(self.event(EventName.ROLE_DELETED, by, name, permissions=sorted(before)))

    async def principal_for(self, user: UserRecord, channel: str) -> Principal:
        """The user's effective permissions; custom roles are read only if the user has one."""
        custom = await self.store.custom_roles() if user.roles - set(BUILTIN_ROLES) else {}
        return Principal.from_roles(user.username, user.roles, custom, channel, user.scope)

    async def create_token(
        self,
        username: str,
        name: str,
        lifetime: timedelta | None,
        *,
        service: bool = False,
        by: Actor = DATABASE_ADMINISTRATOR,
    ) -> IssuedToken:
        """A new API token for a user; the plaintext is returned here only. A single sign-on
        user's token works only while they have a console session, unless it is a `service`
        token (made by an administrator, outside any person's session)."""
        user = await self.store.user_by_name(username)
        if user is None:
            raise NotFound(f"no user '{username}'")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + lifetime if lifetime else None
        token_id = await self.store.add_token(
            user.id, name, token_hash(token), token[:10], now, expires, service=service
        )
        await self._record(
            self.event(
                EventName.TOKEN_CREATED,
                by,
                username,
                token_id=token_id,
                token_name=name,
                prefix=token[:10],
                service=service,
                expires_at=expires.isoformat() if expires else None,
            )
        )
        return IssuedToken(token_id, token, expires)

    async def list_tokens(self, username: str | None = None) -> list[TokenRecord]:
        return await self.store.list_tokens(username)

    async def revoke_token(self, token_id: int, *, by: Actor = DATABASE_ADMINISTRATOR) -> None:
        revoked = await self.store.revoke_token(token_id, self.clock.now())
        await self._record(
            self.event(
                EventName.TOKEN_REVOKED,
                by,
                revoked.username,
                token_id=token_id,
                token_name=revoked.name,
                prefix=revoked.prefix,
            )
        )

    async def revoke_presented_token(self, token: str, *, by: Actor) -> None:
        """Revoke the token a caller presented (signing out a CLI: `clampdown logout`)."""
        found = await self.store.token_with_user(token_hash(token.strip()))
        if found is None:
            raise Unauthenticated("invalid token")
        await self.revoke_token(found[0].id, by=by)

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
        if user.source == "oidc" and not record.service:
            session = await self.store.latest_live_session(user.id, now)
            if session is None:
                raise Unauthenticated(
                    f"this token of single sign-on user {user.username} ends with their console "
                    "session: sign in to the console again, or have an administrator make a service token"
                )
            user = await self._rechecked(session, user)
        if record.last_used_at is None or now - record.last_used_at > timedelta(minutes=1):
            await self.store.touch_token(record.id, now)  # at most once a minute: no write per request
        return await self.principal_for(user, channel)

    async def _rechecked(self, session: SessionRecord, user: UserRecord) -> UserRecord:
        return user if self.recheck is None or user.source != "oidc" else await self.recheck(session, user)

    async def sign_in(
        self, username: str, password: str, source: str | None = None
    ) -> tuple[UserRecord, ConsoleSession]:
        """Check a local password and open a console session. While the account or the source
        address is throttled the answer is TooManyAttempts, and no password is checked."""
        digest = await self.username_digest(username)
        user = await self.store.user_by_name(username)
        # A name that is no user is often a password typed in the wrong field: never record it.
        label = user.username if user is not None else f"unknown user {digest[:16]}"
        keys = AttemptKeys(f"account:{digest}", f"address:{source}" if source else None, label, source)
        await self.throttle.check(keys)
        valid = False
        if user is not None and user.password_hash and not user.disabled:
            try:
                valid = _hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                valid = False
        else:
            _hasher.hash(password)  # same work for unknown users: no timing oracle on usernames
        succeeded = valid and user is not None
        known = {} if user is not None else {"username_hash": digest}
        events = [signin_event(self.clock.now(), label, succeeded, "password", source, **known)]
        if not succeeded or user is None:
            events += await self.throttle.failed(keys)
            await self._record(*events)
            raise Unauthenticated("wrong username or password")
        await self.throttle.succeeded(keys)
        await self._record(*events)
        return user, await self.open_session(user)

    async def open_session(self, user: UserRecord, refresh_token: str | None = None) -> ConsoleSession:
        """A new console session; a single sign-on session keeps the provider's (sealed) refresh token."""
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock.now()
        expires = now + SESSION_LIFETIME
        await self.store.add_session(token_hash(session_id), user.id, csrf, now, expires, refresh_token)
        return ConsoleSession(session_id, csrf, expires)

    async def authenticate_session(
        self, session_id: str | None, csrf_header: str | None, *, unsafe_method: bool
    ) -> Principal:
        """The principal for a console session cookie; unsafe methods must echo the CSRF token."""
        if not session_id:
            raise Unauthenticated("no credentials: send 'Authorization: Bearer <token>' or sign in")
        session = await self.store.session(token_hash(session_id))
        if session is None or session.expires_at <= self.clock.now():
            raise Unauthenticated("session expired: sign in again")
        if unsafe_method and not (csrf_header and same_secret(csrf_header, session.csrf_token)):
            raise PermissionDenied("missing or wrong CSRF token (X-CSRF-Token header)", "CSRF token")
        user = await self.store.user_by_id(session.user_id)
        if user is None or user.disabled:
            raise Unauthenticated("user disabled")
        user = await self._rechecked(session, user)
        return await self.principal_for(user, "console")

    async def csrf_for(self, session_id: str) -> str | None:
        found = await self.store.session(token_hash(session_id))
        return found.csrf_token if found else None

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
