"""What single sign-on grants, kept in step with the identity provider.

A person's roles follow their groups at sign-in and again whenever a session is used after
`sso.recheck_seconds`: the sealed refresh token of the session asks the provider for a new ID
token. Changed groups change the roles (audited as synced from SSO); a person the provider no
longer signs in, or whose groups map to no role any more, loses every console session and every
API token that is not a service token, at once.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import NoReturn

from clampdown.audit.events import EventName, signin_event
from clampdown.auth.oidc import OidcClient, SsoIdentity
from clampdown.auth.service import Actor, AuthService, Unauthenticated
from clampdown.errors import TransientError
from clampdown.permissions import listed_scope
from clampdown.store.auth import SessionRecord, UserRecord

log = logging.getLogger(__name__)
SSO = Actor("sso", "sso")  # changes the identity provider's answers make


class SsoAccess:
    """Sign-in and re-check of single sign-on users, for one configured identity provider."""

    def __init__(self, auth: AuthService, client: OidcClient) -> None:
        self.auth = auth
        self.client = client
        self.interval = timedelta(seconds=client.settings.recheck_seconds)

    def attach(self) -> None:
        """From now on the auth service re-checks SSO sessions and tokens through this."""
        self.auth.recheck = self.recheck

    async def signed_in(self, identity: SsoIdentity, source: str | None) -> UserRecord:
        """The local record of a person who just signed in (made on first sign-in, roles synced)."""
        auth = self.auth
        user = await auth.store.user_by_name(identity.username)
        if user is None:
            user = await auth.store.add_user(
                identity.username,
                identity.roles,
                auth.clock.now(),
                display_name=identity.display_name,
                source="oidc",
                scope=identity.scope,
            )
            await auth.record_events(
                [
                    auth.event(
                        EventName.USER_CREATED,
                        SSO,
                        user.username,
                        roles=sorted(user.roles),
                        scope=listed_scope(user.scope),
                        source_of_user="oidc",
                        groups=list(identity.provider_groups),
                    )
                ]
            )
        elif user.source != "oidc":
            await self.failed(f"'{identity.username}' is a local user", source, identity.username)
            raise Unauthenticated(f"'{identity.username}' is a local user: sign in with a password")
        else:
            user = await self._sync_roles(user, identity)
        await auth.record_events(
            [
                signin_event(
                    auth.clock.now(),
                    user.username,
                    True,
                    "sso",
                    source,
                    groups=list(identity.provider_groups),
                )
            ]
        )
        return user

    async def failed(self, reason: str, source: str | None, username: str | None = None) -> None:
        """A single sign-on that did not end in a session: who, if the provider said, and why."""
        event = signin_event(
            self.auth.clock.now(), username or "unknown user", False, "sso", source, reason=reason
        )
        await self.auth.record_events([event])

    async def _sync_roles(self, user: UserRecord, identity: SsoIdentity) -> UserRecord:
        """The user's roles and directories as the provider's groups map them now (each change audited)."""
        events = []
        groups = list(identity.provider_groups)
        if user.roles != identity.roles:
            await self.auth.store.set_user_roles(user.username, identity.roles)
            events.append(
                self.auth.event(
                    EventName.USER_ROLES_CHANGED,
                    SSO,
                    user.username,
                    before=sorted(user.roles),
                    roles=sorted(identity.roles),
                    groups=groups,
                    synced_from="sso",
                )
            )
        if user.scope != identity.scope:
            await self.auth.store.set_user_scope(user.username, identity.scope)
            events.append(
                self.auth.event(
                    EventName.USER_SCOPE_CHANGED,
                    SSO,
                    user.username,
                    before=listed_scope(user.scope),
                    scope=listed_scope(identity.scope),
                    groups=groups,
                    synced_from="sso",
                )
            )
        if not events:
            return user
        await self.auth.record_events(events)
        return await self.auth.store.user_by_name(user.username) or user

    async def recheck(self, session: SessionRecord, user: UserRecord) -> UserRecord:
        """The user as the identity provider sees them now, if the session is due for a check;
        Unauthenticated once the provider no longer signs them in to any Clampdown role."""
        now = self.auth.clock.now()
        due_before = now - self.interval
        if session.sso_checked_at is not None and session.sso_checked_at >= due_before:
            return user
        if not await self.auth.store.claim_sso_check(session.id_hash, now, due_before):
            return user  # another request, here or on another instance, is asking right now
        refresh_token = self.client.unseal(session.refresh_token) if session.refresh_token else None
        if refresh_token is None:
            await self.end(user, "the session holds no refresh token to check the sign-in with")
        try:
            identity, kept = await self.client.refresh(refresh_token)
        except TransientError as exc:
            # Signing everyone out while the provider is down would stop the response itself:
            # the session goes on, and is checked again after the next interval.
            log.warning("could not re-check %s with the identity provider: %s", user.username, exc)
            return user
        except Unauthenticated as exc:
            await self.end(user, exc.message)
        if identity.username != user.username:
            await self.end(user, f"the provider now names this person {identity.username!r}")
        if kept != refresh_token:
            await self.auth.store.set_session_refresh_token(session.id_hash, self.client.seal(kept))
        user = await self._sync_roles(user, identity)
        refusal = refusal_of(identity)
        if refusal is not None:
            await self.end(user, refusal)
        return user

    async def end(self, user: UserRecord, reason: str) -> NoReturn:
        """End the person's sessions and session tokens (audited); always raises Unauthenticated."""
        store, now = self.auth.store, self.auth.clock.now()
        sessions = await store.delete_user_sessions(user.id)
        tokens = await store.revoke_session_tokens(user.id, now)
        await self.auth.record_events(
            [
                self.auth.event(
                    EventName.SESSION_ENDED,
                    SSO,
                    user.username,
                    reason=reason,
                    sessions=sessions,
                    tokens_revoked=tokens,
                )
            ]
        )
        raise Unauthenticated(f"single sign-on ended for {user.username}: {reason}; sign in again")


def refusal_of(identity: SsoIdentity) -> str | None:
    """Why the person may not use Clampdown, if their groups map to no role or to no directory."""
    groups = ", ".join(identity.provider_groups) or "none"
    if not identity.roles:
        return f"none of their groups ({groups}) is mapped in sso.role_mapping"
    if identity.scope == frozenset():
        return f"none of their groups ({groups}) is mapped in sso.directory_mapping"
    return None
