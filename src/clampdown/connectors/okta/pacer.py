"""Keeps one connector's requests under Okta's rate limits, across all of its concurrent tasks.

Okta counts requests per endpoint bucket in fixed windows and reports, on every answer, the
bucket's limit, what remains of the window and when it resets. The pacer keeps a local count of
each bucket's remaining requests, lets requests through while some remain, and holds the rest
until the window resets. It never sends a request it knows will be refused, so a bulk run uses
each window fully without a 429.

An answer's X-Rate-Limit-Remaining counts the requests Okta had seen when it answered. Requests
are numbered as they are sent; those sent after the answered one, and those given room but not
sent yet, are taken as not yet counted (Okta admits requests in the order they arrive), so the
estimate is exact when nobody else uses the bucket, and drops to Okta's figure when someone
does. When nothing is in flight, Okta's lowest figure is exact and replaces the estimate.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from clampdown.errors import TransientError

_USER = re.compile(r"^/api/v1/users/[^/]+$")


def okta_bucket(method: str, path: str) -> str:
    """The org rate-limit bucket Okta counts a request in (Okta's per-endpoint table)."""
    if path == "/api/v1/users":
        return "users.list"
    if _USER.match(path):
        return "users.get" if method == "GET" else "users.write"
    if path.startswith("/api/v1/logs"):
        return "logs"
    if path.startswith("/oauth2/"):
        return "oauth.token"
    return "other"


@dataclass(frozen=True)
class RateHeaders:
    """The three X-Rate-Limit-* headers of one answer."""

    limit: int
    remaining: int
    reset: float  # UTC epoch seconds

    @classmethod
    def parse(cls, response: httpx.Response) -> RateHeaders | None:
        try:
            return cls(
                int(response.headers["X-Rate-Limit-Limit"]),
                int(response.headers["X-Rate-Limit-Remaining"]),
                float(response.headers["X-Rate-Limit-Reset"]),
            )
        except (KeyError, ValueError):
            return None


@dataclass
class _Bucket:
    limit: int | None = None
    remaining: int | None = None  # None: unknown until an answer tells us
    reset_at: float = 0.0
    sent: int = 0  # requests sent, numbered from 0
    in_flight: int = 0  # requests given room in the window and not answered yet
    unsent: int = 0  # of those, the ones still waiting for a concurrency slot
    lowest_seen: int | None = None  # the lowest Remaining Okta reported in this window
    held_until: float = 0.0  # after a refusal that is not about the window (concurrency)


class RateLimitPacer:
    """Shared by every task of one connector; `acquire` before a request, `release` after it."""

    def __init__(
        self,
        max_concurrency: int,
        reserve: float = 0.0,
        clock: Callable[[], float] = time.time,
        reset_margin: float = 0.25,
    ) -> None:
        self._slots = asyncio.Semaphore(max_concurrency)
        self._reserve = reserve
        self._clock = clock
        self._margin = reset_margin  # clocks differ a little; Okta's reset is whole seconds
        self._buckets: dict[str, _Bucket] = {}
        self._wake = asyncio.Event()
        self.throttled = 0  # 429 answers seen
        self.waited_seconds = 0.0  # time spent held back by the pacer

    def _bucket(self, name: str) -> _Bucket:
        return self._buckets.setdefault(name, _Bucket())

    async def acquire(self, name: str, deadline: float | None = None) -> int:
        """Wait for room in the bucket's window, then for a concurrency slot; the request's number.

        TransientError (with the reset as retry_after) if the room comes only after `deadline`.
        A request waiting for its bucket holds no slot, so other buckets' requests go on.
        """
        bucket = self._bucket(name)
        while True:
            now = self._clock()
            if bucket.reset_at and now >= bucket.reset_at + self._margin:
                # The window is over: the next one starts full.
                bucket.remaining, bucket.reset_at, bucket.lowest_seen = bucket.limit, 0.0, None
            keep = int((bucket.limit or 0) * self._reserve)
            # An unknown bucket gets one probe; the rest wait for its answer's figures.
            probe = bucket.remaining is None and bucket.in_flight == 0
            held = now < bucket.held_until
            if not held and (probe or (bucket.remaining is not None and bucket.remaining > keep)):
                if bucket.remaining is not None:
                    bucket.remaining -= 1
                bucket.in_flight += 1
                bucket.unsent += 1
                break
            if held:
                pause = bucket.held_until - now
            else:
                pause = max(bucket.reset_at + self._margin - now, 0.01) if bucket.reset_at else 1.0
            if deadline is not None and now + pause > deadline:
                raise TransientError(
                    f"Okta's rate limit for {name} requests is used up until its reset in {pause:.0f} s, "
                    "longer than a request may wait",
                    code="okta_rate_limited",
                    retry_after=max(pause, 1.0),
                )
            started = self._clock()
            wake = self._wake
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=pause)
            self.waited_seconds += self._clock() - started
        try:
            await self._slots.acquire()
        except BaseException:
            bucket.in_flight -= 1
            bucket.unsent -= 1
            raise
        bucket.unsent -= 1
        bucket.sent += 1
        return bucket.sent - 1

    def release(self, name: str, number: int, response: httpx.Response | None) -> None:
        """Account for a finished request and learn from its rate-limit headers."""
        bucket = self._bucket(name)
        was_unknown = bucket.remaining is None
        try:
            headers = RateHeaders.parse(response) if response is not None else None
            refused = response is not None and response.status_code == 429
            self.throttled += refused
            if headers is not None and headers.limit > 0:
                # Okta has not counted the requests sent after this one, nor those not sent yet.
                self._learn(bucket, headers, refused, later=bucket.sent - number - 1 + bucket.unsent)
        finally:
            bucket.in_flight -= 1
            self._slots.release()
        # Nothing in flight: Okta has counted all we sent, so its lowest figure is exact.
        # Estimates only err low (answers can come out of order); give back what they lost.
        exact = bucket.lowest_seen if bucket.in_flight == 0 and bucket.reset_at else None
        if exact is not None and bucket.remaining is not None and exact > bucket.remaining:
            bucket.remaining = exact
            self._wake_waiters()
        elif was_unknown:
            self._wake_waiters()  # the probe came back: its figures (or another probe) let them go

    def _wake_waiters(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    def _learn(self, bucket: _Bucket, headers: RateHeaders, refused: bool, later: int) -> None:
        estimate = max(headers.remaining - later, 0)
        bucket.limit = headers.limit
        if refused:
            bucket.remaining, bucket.lowest_seen = 0, 0
            bucket.reset_at = max(bucket.reset_at, headers.reset)
        elif headers.reset > bucket.reset_at:
            bucket.reset_at = headers.reset  # a new window
            bucket.remaining, bucket.lowest_seen = estimate, headers.remaining
        else:
            if bucket.remaining is None or estimate < bucket.remaining:
                bucket.remaining = estimate  # someone else uses the same bucket
            if bucket.lowest_seen is None or headers.remaining < bucket.lowest_seen:
                bucket.lowest_seen = headers.remaining

    def hold_until(self, name: str, reset: float) -> None:
        """Hold the bucket until `reset` (a concurrency refusal, or a 429 whose reset has passed)."""
        bucket = self._bucket(name)
        bucket.held_until = max(bucket.held_until, reset)
