"""Password sign-in against a real database: throttling per account and per address, and what the
audit trail keeps of a failed attempt. Time is moved with an injected clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy.ext.asyncio import AsyncEngine

import clampdown.auth.service as auth_service
from clampdown.audit.chain import AuditLog
from clampdown.audit.recorder import EventRecorder
from clampdown.auth.service import AuthService, Unauthenticated
from clampdown.config import SigninSettings
from clampdown.errors import TooManyAttempts
from clampdown.permissions import SECURITY_READER
from clampdown.store.auth import AuthStore

PASSWORD = "correct horse battery"
# What an analyst types into the username field by mistake: their password.
TYPED_PASSWORD = "Sup3r-Secret-Passw0rd!"
SETTINGS = SigninSettings(
    account_free_failures=3,
    address_free_failures=5,
    backoff_base_seconds=2,
    backoff_max_seconds=60,
    account_lockout_failures=6,
    address_lockout_failures=12,
    lockout_seconds=600,
    window_seconds=900,
)


class MovableClock:
    def __init__(self) -> None:
        self.at = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def move(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class CountingHasher(PasswordHasher):
    """The real Argon2 hasher, counting its verifications."""

    verifications = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        CountingHasher.verifications += 1
        return super().verify(hash, password)


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def auth(engine: AsyncEngine, clock: MovableClock, monkeypatch: pytest.MonkeyPatch) -> AuthService:
    monkeypatch.setattr(auth_service, "_hasher", CountingHasher())
    CountingHasher.verifications = 0
    service = AuthService(AuthStore(engine, EventRecorder()), clock, signin=SETTINGS, secret=b"k" * 32)
    await service.create_user("ana.analyst", frozenset({SECURITY_READER}), PASSWORD)
    await service.create_user("ben.analyst", frozenset({SECURITY_READER}), PASSWORD)
    return service


async def audit_rows(engine: AsyncEngine) -> list[dict[str, object]]:
    return [row async for row in AuditLog(engine).rows()]


async def fail(auth: AuthService, username: str, source: str = "192.0.2.10") -> None:
    with pytest.raises(Unauthenticated):
        await auth.sign_in(username, "wrong password!", source)


async def test_back_off_after_the_free_failures_without_checking_the_password(
    auth: AuthService, clock: MovableClock
) -> None:
    for _ in range(3):
        await fail(auth, "ana.analyst")
    await fail(auth, "ana.analyst")  # the fourth failure starts the back-off: 2 s
    assert CountingHasher.verifications == 4
    with pytest.raises(TooManyAttempts) as refused:
        await auth.sign_in("ana.analyst", PASSWORD, "192.0.2.10")  # even the right password waits
    assert refused.value.retry_after == 2 and "this account" in refused.value.message
    assert CountingHasher.verifications == 4  # no Argon2 for a throttled attempt
    clock.move(2)
    await fail(auth, "ana.analyst")  # the fifth: 4 s
    with pytest.raises(TooManyAttempts) as refused:
        await auth.sign_in("ana.analyst", PASSWORD, "192.0.2.10")
    assert refused.value.retry_after == 4
    clock.move(4)
    user, _ = await auth.sign_in("ana.analyst", PASSWORD, "192.0.2.10")
    assert user.username == "ana.analyst"
    await fail(auth, "ana.analyst", "192.0.2.11")  # the success forgot the account's failures:
    await auth.sign_in("ana.analyst", PASSWORD, "192.0.2.11")  # no wait


async def test_lockout_after_the_limit_is_audited_and_ends_with_its_interval(
    auth: AuthService, clock: MovableClock, engine: AsyncEngine
) -> None:
    for _ in range(6):
        await fail(auth, "ana.analyst", source=f"198.51.100.{clock.at.second}")
        clock.move(61)  # past every back-off, within the window
    with pytest.raises(TooManyAttempts) as locked:
        await auth.sign_in("ana.analyst", PASSWORD, "203.0.113.7")  # another address: the account is locked
    assert locked.value.retry_after == 600 - 61
    events = [(r["event"], r["subject"], r["data"]) for r in await audit_rows(engine)]
    throttled = [e for e in events if e[0] == "signin.throttled"]
    [lock] = [e for e in events if e[0] == "signin.locked"]
    assert [d["failures"] for _, _, d in throttled] == [4, 5]  # type: ignore[index]
    assert lock[1] == "ana.analyst" and lock[2]["throttled"] == "account"  # type: ignore[index]
    assert lock[2]["failures"] == 6  # type: ignore[index]
    clock.move(600)
    await auth.sign_in("ana.analyst", PASSWORD, "203.0.113.7")


async def test_per_address_throttling_spans_usernames(auth: AuthService, clock: MovableClock) -> None:
    names = ["ana.analyst", "ben.analyst", "nobody.1", "nobody.2", "nobody.3", "nobody.4"]
    for name in names:  # one failure each: no account reaches its limit, the address does
        await fail(auth, name, source="192.0.2.99")
    with pytest.raises(TooManyAttempts) as refused:
        await auth.sign_in("ben.analyst", PASSWORD, "192.0.2.99")
    assert "this address" in refused.value.message and refused.value.retry_after == 2
    await auth.sign_in("ben.analyst", PASSWORD, "192.0.2.1")  # from elsewhere the account is fine
    clock.move(2)
    await auth.sign_in("ben.analyst", PASSWORD, "192.0.2.99")


async def test_failures_are_forgotten_after_the_window(auth: AuthService, clock: MovableClock) -> None:
    for _ in range(4):
        await fail(auth, "ana.analyst")
    clock.move(901)
    for _ in range(3):  # counted from one again: three free failures, no wait
        await fail(auth, "ana.analyst")
    await auth.sign_in("ana.analyst", PASSWORD, "192.0.2.10")


async def test_an_unknown_username_is_recorded_only_as_a_keyed_hash(
    auth: AuthService, engine: AsyncEngine
) -> None:
    await fail(auth, TYPED_PASSWORD)
    await fail(auth, TYPED_PASSWORD)
    await fail(auth, "ana.analyst")
    rows = await audit_rows(engine)
    assert TYPED_PASSWORD not in json.dumps(rows, default=str)
    failed = [r for r in rows if r["event"] == "signin.failed"]
    unknown = [r for r in failed if r["actor"] != "ana.analyst"]
    assert len(unknown) == 2 and unknown[0]["actor"] == unknown[1]["actor"]  # correlated
    digest = unknown[0]["data"]["username_hash"]  # type: ignore[index]
    assert unknown[0]["actor"] == f"unknown user {digest[:16]}" and len(digest) == 32
    assert digest == await auth.username_digest(TYPED_PASSWORD)
    other = AuthService(AuthStore(engine), signin=SETTINGS, secret=b"another secret")
    assert await other.username_digest(TYPED_PASSWORD) != digest  # keyed: not a plain hash
    [known] = [r for r in failed if r["actor"] == "ana.analyst"]
    assert known["subject"] == "ana.analyst" and "username_hash" not in known["data"]  # type: ignore[operator]
    assert known["data"]["source"] == "192.0.2.10"  # type: ignore[index]
    throttle_keys = await auth.store.throttle([f"account:{digest}"])
    assert throttle_keys and throttle_keys[0].failures == 2


async def test_without_a_configured_secret_the_key_is_kept_in_the_database(engine: AsyncEngine) -> None:
    first = AuthService(AuthStore(engine), signin=SETTINGS)
    second = AuthService(AuthStore(engine), signin=SETTINGS)  # another instance, same database
    assert await first.username_digest("x") == await second.username_digest("x")
    assert await first.username_digest("x") != await first.username_digest("y")
