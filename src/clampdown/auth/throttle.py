"""Back-off and lockout of failed password sign-ins, per account and per source address.

The state lives in the database (`signin_throttle`), so every instance behind a balancer sees
the same counts and a restart forgets nothing. A throttled attempt is answered from one indexed
read, before any password is checked: the cost of an Argon2 verification is what an attacker
must not get for free. Accounts are keyed by a keyed hash of the name, so no typed username (or
password typed into the username field) is ever stored here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from clampdown.audit.chain import AuditEvent
from clampdown.audit.events import EventName, access_event
from clampdown.clock import Clock
from clampdown.config import SigninSettings
from clampdown.errors import TooManyAttempts
from clampdown.store.auth import AuthStore


@dataclass(frozen=True)
class AttemptKeys:
    """Under which keys an attempt counts, and how the account is named in the audit trail."""

    account: str  # "account:<hash>"
    address: str | None  # "address:<ip>"
    account_label: str  # a known user's name, or "unknown user <hash>"
    source: str | None


class SigninThrottle:
    def __init__(self, store: AuthStore, settings: SigninSettings, clock: Clock) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    async def check(self, keys: AttemptKeys) -> None:
        """TooManyAttempts with the seconds to wait, while the account or the address is blocked."""
        now = self.clock.now()
        wanted = [keys.account] + ([keys.address] if keys.address else [])
        waits = [
            (r.key, r.blocked_until - now)
            for r in await self.store.throttle(wanted)
            if r.blocked_until is not None and r.blocked_until > now
        ]
        if not waits:
            return
        key, wait = max(waits, key=lambda w: w[1])
        seconds = max(1, math.ceil(wait.total_seconds()))
        what = "this account" if key == keys.account else "this address"
        raise TooManyAttempts(
            f"too many failed sign-ins for {what}: try again in {seconds} seconds", retry_after=seconds
        )

    async def failed(self, keys: AttemptKeys) -> list[AuditEvent]:
        """Count a failure under each key; the throttled or locked events it causes."""
        s = self.settings
        now = self.clock.now()
        forget_before = now - timedelta(seconds=s.window_seconds)
        limits = [(keys.account, "account", s.account_free_failures, s.account_lockout_failures)]
        if keys.address:
            limits.append((keys.address, "address", s.address_free_failures, s.address_lockout_failures))
        events = []
        for key, kind, free, lockout in limits:
            failures = await self.store.count_failure(key, now, forget_before)
            if failures >= lockout:
                name, seconds = EventName.SIGNIN_LOCKED, s.lockout_seconds
            elif failures > free:
                name = EventName.SIGNIN_THROTTLED
                seconds = min(s.backoff_base_seconds * 2 ** (failures - free - 1), s.backoff_max_seconds)
            else:
                continue
            until = now + timedelta(seconds=seconds)
            await self.store.block(key, until)
            subject = keys.account_label if kind == "account" else keys.source
            events.append(
                access_event(
                    name,
                    now,
                    "clampdown",
                    subject,
                    "console",
                    keys.source,
                    throttled=kind,
                    failures=failures,
                    until=until.isoformat(),
                )
            )
        return events

    async def succeeded(self, keys: AttemptKeys) -> None:
        """A right password clears the account's count (not the address's: one account an
        attacker holds must not reset the count of their guesses at others)."""
        await self.store.forget_failures(keys.account)
