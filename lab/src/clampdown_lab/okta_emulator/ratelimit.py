"""Okta's per-endpoint, per-minute org rate limits and the concurrent-request limit.

Each bucket counts requests in a fixed window that starts at its first request and lasts
`window_seconds` (60 on Okta; windows are not aligned with wall-clock minutes). Limits are the
Enterprise column of Okta's table unless configured otherwise.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_LIMITS: dict[str, int] = {
    "users.get": 1000,  # GET /api/v1/users/{idOrLogin}
    "users.write": 600,  # POST/PUT/DELETE /api/v1/users/{id}
    "users.list": 600,  # GET|POST /api/v1/users
    "logs": 50,  # /api/v1/logs
    "oauth.token": 600,  # /oauth2/v1/token
    "other": 600,  # most other /api/v1 endpoints, lifecycle and sessions included
}
DEFAULT_CONCURRENCY = 75

_USER = re.compile(r"^/api/v1/users/[^/]+$")


def bucket_for(method: str, path: str) -> str:
    """The rate-limit bucket Okta counts this request in."""
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
class RateDecision:
    """Whether a request may run, and the three headers to answer with."""

    allowed: bool
    limit: int
    remaining: int
    reset: int  # UTC epoch seconds
    concurrency: bool = False  # refused by the concurrent-request limit

    def headers(self) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Reset": str(self.reset),
        }


@dataclass
class _Window:
    start: float
    count: int = 0


@dataclass
class RateLimiter:
    """Counts requests per bucket; `limits` and `concurrency` may be changed while running."""

    clock: Callable[[], float] = time.time
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    concurrency: int = DEFAULT_CONCURRENCY
    window_seconds: float = 60.0
    in_flight: int = 0
    windows: dict[str, _Window] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # bucket -> requests seen, "429" -> refusals

    def configure(
        self,
        limits: dict[str, int] | None = None,
        concurrency: int | None = None,
        window_seconds: float | None = None,
    ) -> None:
        """Change limits; windows restart so a new limit applies at once."""
        if limits:
            self.limits.update(limits)
        if concurrency is not None:
            self.concurrency = concurrency
        if window_seconds is not None:
            self.window_seconds = window_seconds
        self.windows.clear()

    def admit(self, bucket: str) -> RateDecision:
        """Count one request in `bucket`; the caller must call `release` if it was allowed."""
        now = self.clock()
        self.counters[bucket] = self.counters.get(bucket, 0) + 1
        limit = self.limits.get(bucket, self.limits["other"])
        window = self.windows.get(bucket)
        if window is None or now >= window.start + self.window_seconds:
            window = self.windows[bucket] = _Window(start=now)
        reset = math.ceil(window.start + self.window_seconds)
        if self.in_flight >= self.concurrency:
            self.counters["429"] = self.counters.get("429", 0) + 1
            # Okta reports concurrency refusals with 0/0 and an estimated reset.
            return RateDecision(False, 0, 0, math.ceil(now + 1), concurrency=True)
        if window.count >= limit:
            self.counters["429"] = self.counters.get("429", 0) + 1
            return RateDecision(False, limit, 0, reset)
        window.count += 1
        self.in_flight += 1
        return RateDecision(True, limit, limit - window.count, reset)

    def release(self) -> None:
        self.in_flight -= 1
