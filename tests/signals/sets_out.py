"""Clampdown's SETs out, in the tests: [ssf.transmitter] settings and keys, streams written straight
into ssf_streams (as the stream management API or the declared streams would), the outbox read back,
and a SET verified with the published JWKS as a receiver would; a containment run through the real engine
over memory directories, its recorder announcing it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.recorder import EventRecorder
from clampdown.audit.ssf_out import ContainmentAnnouncer
from clampdown.auth.principal import Principal
from clampdown.config import PlaybookSettings, PlaybookStep, Settings, SsfTransmitterSettings
from clampdown.db.tables import ssf_outbox, ssf_stream_subjects, ssf_streams
from clampdown.engine.worker import Worker
from clampdown.errors import PermanentError
from clampdown.model import Account, ActionContext, ActionOutcome
from clampdown.policy import PolicyGate
from clampdown.secevents import CONTAINMENT_EVENTS, PUSH, TransmitterKeys, generate_key
from clampdown.services.actions import ActionService
from clampdown.services.playbooks import PlaybookService
from clampdown.store.actions import ActionStore
from clampdown.store.containments import ContainmentStore
from tests.services.conftest import FAST, Directory

ISSUER = "https://clampdown.test"


def transmitter_settings(tmp_path: Path, issuer: str = ISSUER, **changes: Any) -> SsfTransmitterSettings:
    """[ssf.transmitter] with a new EC key in tmp_path (made once per folder)."""
    key = tmp_path / "ssf-out-signing.pem"
    if not key.exists():
        generate_key(str(key))
    return SsfTransmitterSettings(issuer=issuer, signing_key_file=str(key), **changes)


def keys_of(settings: SsfTransmitterSettings) -> TransmitterKeys:
    return TransmitterKeys.load(settings.signing_key_file, settings.previous_key_files)


async def add_stream(
    engine: AsyncEngine,
    stream_id: str,
    *,
    events: Sequence[str] = CONTAINMENT_EVENTS,
    status: str = "enabled",
    endpoint_url: str | None = "https://receiver.test/events",
    authorization_header: str | None = None,
    audience: str = "https://receiver.test",
) -> None:
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(ssf_streams).values(
                stream_id=stream_id, owner="tests", audience=[audience], events_requested=list(events),
                delivery_method=PUSH, endpoint_url=endpoint_url, authorization_header=authorization_header,
                status=status, created_at=now, updated_at=now,
            )
        )  # fmt: skip


async def mark_subject(engine: AsyncEngine, stream_id: str, email: str, included: bool) -> None:
    """The receiver added (True) or removed (False) the subject with this address."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(ssf_stream_subjects).values(
                stream_id=stream_id, subject_key=f"email:{email.lower()}",
                subject={"format": "email", "email": email}, included=included, updated_at=datetime.now(UTC),
            )
        )  # fmt: skip


async def outbox(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The outbox's rows, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(ssf_outbox).order_by(ssf_outbox.c.id))
        return [dict(r) for r in rows.mappings()]


def verified(
    token: str, keys: TransmitterKeys, audience: str = "https://receiver.test", issuer: str = ISSUER
) -> dict[str, Any]:
    """A SET's claims, its signature checked against the published JWKS (public keys only)."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "secevent+jwt"
    jwk = next(k for k in keys.jwks()["keys"] if k["kid"] == header["kid"])
    assert "d" not in jwk  # the JWKS holds no private part
    key = jwt.PyJWK(jwk).key
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=[jwk["alg"]], audience=audience, issuer=issuer)
    return claims


# Each step announces: disabled (ad, okta), a password reset (credential-change), sessions revoked.
ANNOUNCED = PlaybookSettings(
    steps=[
        PlaybookStep(action="ad.disable_user"),
        PlaybookStep(action="ad.force_password_reset", after="ad.disable_user"),
        PlaybookStep(action="entra.revoke_sessions"),
        PlaybookStep(action="okta.suspend_user"),
    ]
)


class HeldDirectory(Directory):
    """A memory directory where one method can be held until released, or made to fail."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.held: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()

    async def _perform(self, method: str, account: Account, context: ActionContext) -> ActionOutcome:
        if method in self.held:
            await self.held[method].wait()
        if method in self.failing:
            raise PermanentError(f"{method} refused by the directory")
        return await super()._perform(method, account, context)


@dataclass
class Transmitting:
    engine: AsyncEngine
    settings: SsfTransmitterSettings
    keys: TransmitterKeys
    announcer: ContainmentAnnouncer
    store: ActionStore
    directories: dict[str, HeldDirectory]
    playbooks: PlaybookService
    gate: PolicyGate

    def worker(self) -> Worker:
        return Worker(self.store, dict(self.directories), FAST, gate=self.gate)

    async def drain(self) -> None:
        await self.worker().run(until_idle=True)

    async def contain(self, admin: Principal, person: str = "alice") -> int:
        run = await self.playbooks.run("announced", person, "phishing, INC-7", admin)
        assert run.containment_id is not None
        return run.containment_id


def build_transmitting(engine: AsyncEngine, settings: SsfTransmitterSettings) -> Transmitting:
    """The services over memory directories, their recorder announcing containments."""
    keys = keys_of(settings)
    announcer = ContainmentAnnouncer(settings, keys)
    store = ActionStore(engine, EventRecorder(outputs=[announcer]))
    directories = {name: HeldDirectory(name) for name in ("ad", "entra", "okta")}
    defaults = Settings()
    gate = PolicyGate(defaults.protection, defaults.approvals)
    actions_service = ActionService(store, dict(directories), guardrails=gate)
    playbooks = PlaybookService(
        actions_service, {**defaults.playbooks, "announced": ANNOUNCED}, ContainmentStore(store)
    )
    return Transmitting(engine, settings, keys, announcer, store, directories, playbooks, gate)
