"""Queries on users, custom roles, API tokens, console sessions and access denials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import denial_event
from clampdown.audit.recorder import EventRecorder
from clampdown.db.tables import access_denials, api_tokens, custom_roles, sessions, users
from clampdown.errors import Conflict, NotFound


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
    )


_TOKEN_COLUMNS = (*api_tokens.c, users.c.username)


class AuthStore:
    """All reads and writes of sign-in data."""

    def __init__(self, engine: AsyncEngine, recorder: EventRecorder | None = None) -> None:
        self.engine = engine
        self.recorder = recorder

    async def record_events(self, events: list[AuditEvent]) -> None:
        """Audit events of their own (sign-ins, tokens)."""
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
    ) -> UserRecord:
        values: dict[str, Any] = {
            "username": username,
            "display_name": display_name,
            "password_hash": password_hash,
            "roles": sorted(roles),
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

    async def put_custom_role(self, name: str, permissions: frozenset[str], description: str | None) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(custom_roles.delete().where(custom_roles.c.name == name))
            await conn.execute(
                insert(custom_roles).values(
                    name=name, permissions=sorted(permissions), description=description
                )
            )

    async def add_token(
        self,
        user_id: int,
        name: str,
        token_hash: str,
        prefix: str,
        now: datetime,
        expires_at: datetime | None,
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

    async def revoke_token(self, token_id: int, now: datetime) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        if result.rowcount == 0:
            raise NotFound(f"no active token with id {token_id}")

    async def add_session(
        self, id_hash: str, user_id: int, csrf_token: str, now: datetime, expires_at: datetime
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(sessions).values(
                    id_hash=id_hash,
                    user_id=user_id,
                    csrf_token=csrf_token,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    async def session(self, id_hash: str) -> tuple[int, str, datetime] | None:
        """(user id, CSRF token, expiry) of a session."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(sessions).where(sessions.c.id_hash == id_hash))).mappings().first()
            )
        return (int(row["user_id"]), row["csrf_token"], row["expires_at"]) if row else None

    async def delete_session(self, id_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sessions.delete().where(sessions.c.id_hash == id_hash))

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
