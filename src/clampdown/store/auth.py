"""Queries on users, custom roles, API tokens, console sessions and access denials."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import denial_event
from clampdown.audit.recorder import EventRecorder
from clampdown.db.tables import (
    access_denials,
    api_tokens,
    custom_roles,
    server_keys,
    sessions,
    signin_throttle,
    users,
)
from clampdown.errors import Conflict, NotFound
from clampdown.permissions import listed_scope


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    display_name: str | None
    password_hash: str | None
    roles: frozenset[str]
    source: str
    disabled: bool
    created_at: datetime
    scope: frozenset[str] | None = None  # the directories the roles are limited to; None: all


@dataclass(frozen=True)
class TokenRecord:
    id: int
    user_id: int
    username: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    service: bool = False


@dataclass(frozen=True)
class SessionRecord:
    """A console session; `refresh_token` (sealed) and `sso_checked_at` for single sign-on."""

    id_hash: str
    user_id: int
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    refresh_token: str | None
    sso_checked_at: datetime | None


@dataclass(frozen=True)
class ThrottleRecord:
    """Recent failed sign-ins under one key (an account's hash or a source address)."""

    key: str
    failures: int
    last_failure_at: datetime
    blocked_until: datetime | None


@dataclass(frozen=True)
class Denial:
    at: datetime
    principal: str
    channel: str
    attempted: str
    target: str | None
    missing: str


def _user(row: RowMapping) -> UserRecord:
    return UserRecord(
        id=int(row["id"]),
        username=row["username"],
        display_name=row["display_name"],
        password_hash=row["password_hash"],
        roles=frozenset(row["roles"] or ()),
        source=row["source"],
        disabled=bool(row["disabled"]),
        created_at=row["created_at"],
        scope=frozenset(row["scope"]) if row["scope"] is not None else None,
    )


def _token(row: RowMapping) -> TokenRecord:
    return TokenRecord(
        id=int(row["id"]),
        user_id=int(row["user_id"]),
        username=row["username"],
        name=row["name"],
        prefix=row["prefix"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        service=bool(row["service"]),
    )


def _session(row: RowMapping) -> SessionRecord:
    return SessionRecord(
        id_hash=row["id_hash"],
        user_id=int(row["user_id"]),
        csrf_token=row["csrf_token"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        refresh_token=row["refresh_token"],
        sso_checked_at=row["sso_checked_at"],
    )


_TOKEN_COLUMNS = (*api_tokens.c, users.c.username)


class AuthStore:
    """All reads and writes of sign-in data."""

    def __init__(self, engine: AsyncEngine, recorder: EventRecorder | None = None) -> None:
        self.engine = engine
        self.recorder = recorder

    async def record_events(self, events: list[AuditEvent]) -> None:
        """Audit events of their own (sign-ins, tokens, users, roles)."""
        if self.recorder is None or not events:
            return
        async with self.engine.begin() as conn:
            await self.recorder.record_in(conn, events)
        self.recorder.after_commit(events)

    async def add_user(
        self,
        username: str,
        roles: frozenset[str],
        now: datetime,
        *,
        password_hash: str | None = None,
        display_name: str | None = None,
        source: str = "local",
        scope: frozenset[str] | None = None,
    ) -> UserRecord:
        values: dict[str, Any] = {
            "username": username,
            "display_name": display_name,
            "password_hash": password_hash,
            "roles": sorted(roles),
            "scope": listed_scope(scope),
            "source": source,
            "disabled": False,
            "created_at": now,
        }
        try:
            async with self.engine.begin() as conn:
                row = (await conn.execute(insert(users).values(values).returning(*users.c))).mappings().one()
        except IntegrityError:
            raise Conflict(f"user '{username}' already exists") from None
        return _user(row)

    async def set_user_roles(self, username: str, roles: frozenset[str]) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(users).where(users.c.username == username).values(roles=sorted(roles)))

    async def set_user_scope(self, username: str, scope: frozenset[str] | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(users).where(users.c.username == username).values(scope=listed_scope(scope))
            )

    async def user_by_name(self, username: str) -> UserRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).mappings().first()
        return _user(row) if row else None

    async def user_by_id(self, user_id: int) -> UserRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).mappings().first()
        return _user(row) if row else None

    async def custom_roles(self) -> dict[str, frozenset[str]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(custom_roles))).mappings().all()
        return {r["name"]: frozenset(r["permissions"] or ()) for r in rows}

    async def put_custom_role(
        self, name: str, permissions: frozenset[str], description: str | None
    ) -> frozenset[str] | None:
        """Create or replace a custom role; the permissions it had before, None if it is new."""
        async with self.engine.begin() as conn:
            before = (
                await conn.execute(select(custom_roles.c.permissions).where(custom_roles.c.name == name))
            ).scalar_one_or_none()
            await conn.execute(custom_roles.delete().where(custom_roles.c.name == name))
            await conn.execute(
                insert(custom_roles).values(
                    name=name, permissions=sorted(permissions), description=description
                )
            )
        return None if before is None else frozenset(before)

    async def delete_custom_role(self, name: str) -> frozenset[str]:
        """Delete a custom role; the permissions it had. NotFound if there is none."""
        async with self.engine.begin() as conn:
            before = (
                await conn.execute(select(custom_roles.c.permissions).where(custom_roles.c.name == name))
            ).scalar_one_or_none()
            if before is None:
                raise NotFound(f"no custom role '{name}'")
            await conn.execute(custom_roles.delete().where(custom_roles.c.name == name))
        return frozenset(before)

    async def users_with_role(self, role: str) -> list[str]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(users.c.username, users.c.roles))).all()
        return sorted(name for name, roles in rows if role in (roles or ()))

    async def add_token(
        self,
        user_id: int,
        name: str,
        token_hash: str,
        prefix: str,
        now: datetime,
        expires_at: datetime | None,
        *,
        service: bool = False,
    ) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(api_tokens)
                .values(
                    user_id=user_id,
                    name=name,
                    token_hash=token_hash,
                    prefix=prefix,
                    created_at=now,
                    expires_at=expires_at,
                    service=service,
                )
                .returning(api_tokens.c.id)
            )
            return int(result.scalar_one())

    async def token_with_user(self, token_hash: str) -> tuple[TokenRecord, UserRecord] | None:
        """A token and its user in one query: this runs on every API request."""
        user_columns = [c.label(f"u__{c.name}") for c in users.c]
        query = (
            select(*api_tokens.c, *user_columns)
            .join(users, users.c.id == api_tokens.c.user_id)
            .where(api_tokens.c.token_hash == token_hash)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        user = _user({c.name: row[f"u__{c.name}"] for c in users.c})  # type: ignore[arg-type]
        return _token({**row, "username": user.username}), user  # type: ignore[arg-type]

    async def touch_token(self, token_id: int, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now))

    async def list_tokens(self, username: str | None = None) -> list[TokenRecord]:
        query = (
            select(*_TOKEN_COLUMNS).join(users, users.c.id == api_tokens.c.user_id).order_by(api_tokens.c.id)
        )
        if username:
            query = query.where(users.c.username == username)
        async with self.engine.connect() as conn:
            return [_token(r) for r in (await conn.execute(query)).mappings()]

    async def revoke_token(self, token_id: int, now: datetime) -> TokenRecord:
        """Revoke an active token; the token as it was. NotFound if none is active."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if result.rowcount == 0:
                raise NotFound(f"no active token with id {token_id}")
            query = select(*_TOKEN_COLUMNS).join(users, users.c.id == api_tokens.c.user_id)
            row = (await conn.execute(query.where(api_tokens.c.id == token_id))).mappings().one()
        return _token(row)

    async def revoke_session_tokens(self, user_id: int, now: datetime) -> list[int]:
        """Revoke a user's active tokens that are not service tokens; their ids."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(api_tokens)
                .where(
                    api_tokens.c.user_id == user_id,
                    api_tokens.c.revoked_at.is_(None),
                    api_tokens.c.service.is_(False),
                )
                .values(revoked_at=now)
                .returning(api_tokens.c.id)
            )
            return sorted(int(i) for i in result.scalars())

    async def add_session(
        self,
        id_hash: str,
        user_id: int,
        csrf_token: str,
        now: datetime,
        expires_at: datetime,
        refresh_token: str | None = None,
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(sessions).values(
                    id_hash=id_hash,
                    user_id=user_id,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=expires_at,
                    refresh_token=refresh_token,
                    sso_checked_at=now,  # signing in is a check; single sign-on checks again later
                )
            )

    async def session(self, id_hash: str) -> SessionRecord | None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(sessions).where(sessions.c.id_hash == id_hash))).mappings().first()
            )
        return _session(row) if row else None

    async def latest_live_session(self, user_id: int, now: datetime) -> SessionRecord | None:
        """The user's newest session that has not expired."""
        query = (
            select(sessions)
            .where(sessions.c.user_id == user_id, sessions.c.expires_at > now)
            .order_by(sessions.c.created_at.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _session(row) if row else None

    async def claim_sso_check(self, id_hash: str, now: datetime, due_before: datetime) -> bool:
        """Mark a session checked now if its last check is older than `due_before`: True for the
        one caller (of any instance) that should ask the identity provider."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(sessions)
                .where(
                    sessions.c.id_hash == id_hash,
                    (sessions.c.sso_checked_at.is_(None)) | (sessions.c.sso_checked_at < due_before),
                )
                .values(sso_checked_at=now)
            )
        return bool(result.rowcount)

    async def set_session_refresh_token(self, id_hash: str, refresh_token: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(sessions).where(sessions.c.id_hash == id_hash).values(refresh_token=refresh_token)
            )

    async def delete_session(self, id_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sessions.delete().where(sessions.c.id_hash == id_hash))

    async def delete_user_sessions(self, user_id: int) -> int:
        """End every console session of a user; how many there were."""
        async with self.engine.begin() as conn:
            result = await conn.execute(sessions.delete().where(sessions.c.user_id == user_id))
        return int(result.rowcount or 0)

    async def throttle(self, keys: list[str]) -> list[ThrottleRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(signin_throttle).where(signin_throttle.c.key.in_(keys)))).all()
        return [ThrottleRecord(r.key, int(r.failures), r.last_failure_at, r.blocked_until) for r in rows]

    async def count_failure(self, key: str, now: datetime, forget_before: datetime) -> int:
        """One more failed sign-in under `key` (failures before `forget_before` are forgotten); the
        count now. Serialised per key, so concurrent failures all count."""
        for _ in range(3):
            try:
                async with self.engine.begin() as conn:
                    query = select(signin_throttle).where(signin_throttle.c.key == key).with_for_update()
                    row = (await conn.execute(query)).first()
                    if row is None:
                        await conn.execute(
                            insert(signin_throttle).values(key=key, failures=1, last_failure_at=now)
                        )
                        return 1
                    failures = 1 if row.last_failure_at < forget_before else int(row.failures) + 1
                    await conn.execute(
                        update(signin_throttle)
                        .where(signin_throttle.c.key == key)
                        .values(failures=failures, last_failure_at=now)
                    )
                    return failures
            except IntegrityError:  # another instance inserted the key first: count on top of it
                continue
        raise Conflict(f"could not count a failed sign-in under {key}")

    async def block(self, key: str, until: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(signin_throttle).where(signin_throttle.c.key == key).values(blocked_until=until)
            )

    async def forget_failures(self, key: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(signin_throttle).where(signin_throttle.c.key == key))

    async def server_key(self, name: str) -> str:
        """A random key the server keeps in the database, made on first use."""
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(select(server_keys.c.value).where(server_keys.c.name == name))
            ).scalar_one_or_none()
        if found is not None:
            return str(found)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(server_keys).values(name=name, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another instance made it first: theirs is the key
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(select(server_keys.c.value).where(server_keys.c.name == name))
            ).scalar_one()
        return str(value)

    async def record_denial(self, denial: Denial) -> None:
        event = denial_event(
            denial.at, denial.principal, denial.attempted, denial.target, denial.missing, denial.channel
        )
        async with self.engine.begin() as conn:
            if self.recorder is not None:
                await self.recorder.record_in(conn, [event])
            await conn.execute(
                insert(access_denials).values(
                    at=denial.at,
                    principal=denial.principal,
                    channel=denial.channel,
                    attempted=denial.attempted,
                    target=denial.target,
                    missing=denial.missing,
                )
            )
        if self.recorder is not None:
            self.recorder.after_commit([event])

    async def denials(self, limit: int = 100) -> list[Denial]:
        query = select(access_denials).order_by(access_denials.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            Denial(r["at"], r["principal"], r["channel"], r["attempted"], r["target"], r["missing"])
            for r in rows
        ]
