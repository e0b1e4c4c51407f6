"""Throttling and fault injection for the emulator.

Throttling uses token buckets, one per scope, as Graph's limits are described: `requests`
counts HTTP requests (a `$batch` is one), `directory` / `directory_writes` count every user
request including each one inside a `$batch`, `identity_protection` is about one request per
second per tenant and answers 429 WITHOUT Retry-After, `reports` covers sign-in logs.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field


class BucketPolicy(BaseModel):
    """`rate` tokens per second, up to `burst`; `retry_after` says whether a 429 names the wait."""

    rate: float = Field(gt=0)
    burst: float = Field(ge=1)
    retry_after: bool = True


class ThrottleConfig(BaseModel):
    """Per-scope limits; a scope set to None is not throttled."""

    requests: BucketPolicy | None = None
    directory: BucketPolicy | None = None
    directory_writes: BucketPolicy | None = None
    identity_protection: BucketPolicy | None = None
    reports: BucketPolicy | None = None

    @classmethod
    def like_graph(cls) -> ThrottleConfig:
        """Limits in the spirit of the documented ones for a small tenant (lab default)."""
        return cls(
            directory=BucketPolicy(rate=350, burst=3500),
            directory_writes=BucketPolicy(rate=20, burst=3000),  # 3,000 writes per 2 min 30 s
            identity_protection=BucketPolicy(rate=1, burst=1, retry_after=False),
            reports=BucketPolicy(rate=0.5, burst=5),  # 5 requests per 10 s
        )


class TokenBucket:
    """A token bucket on the monotonic clock."""

    def __init__(self, policy: BucketPolicy) -> None:
        self.policy = policy
        self.tokens = policy.burst
        self.stamp = time.monotonic()

    def take(self) -> float | None:
        """Take one token: None if granted, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.policy.burst, self.tokens + (now - self.stamp) * self.policy.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.policy.rate


class Throttle:
    """The tenant's buckets; reconfigurable at run time through the admin API."""

    def __init__(self, config: ThrottleConfig | None = None) -> None:
        self.configure(config or ThrottleConfig())

    def configure(self, config: ThrottleConfig) -> None:
        self.config = config
        self.buckets: dict[str, TokenBucket] = {}
        for name in type(config).model_fields:
            policy = getattr(config, name)
            if policy is not None:
                self.buckets[name] = TokenBucket(policy)

    def check(self, scopes: tuple[str, ...]) -> tuple[str, float | None] | None:
        """None when every scope grants the request, else (scope, Retry-After seconds or None)."""
        for scope in scopes:
            bucket = self.buckets.get(scope)
            if bucket is None:
                continue
            wait = bucket.take()
            if wait is not None:
                # Whole milliseconds, never 0: Graph's hint may be fractional ("2.128").
                hint = max(0.001, math.ceil(wait * 1000) / 1000) if bucket.policy.retry_after else None
                return scope, hint
        return None


class FaultRule(BaseModel):
    """Answer matching requests with an error instead of serving them, `times` times (-1: always)."""

    method: str = "*"
    path: str = ".*"  # regex searched in the request path (without /v1.0)
    status: int = 503
    code: str = "ServiceUnavailable"
    message: str = "The service is temporarily unavailable. Please retry later."
    retry_after: float | None = None
    times: int = 1


@dataclass
class Faults:
    """Armed fault rules, consumed in order; `next_link_base`, when set, is where every
    `@odata.nextLink` points instead of the emulator (a poisoned link, as a hostile or
    compromised endpoint could send)."""

    rules: list[FaultRule] = field(default_factory=list)
    next_link_base: str | None = None

    def match(self, method: str, path: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.method not in ("*", method.upper()) or not re.search(rule.path, path):
                continue
            if rule.times > 0:
                rule.times -= 1
                if rule.times == 0:
                    self.rules.remove(rule)
            return rule
        return None


@dataclass
class Counters:
    """What the emulator served, for tests and benchmarks."""

    http_requests: int = 0
    batch_requests: int = 0
    inner_requests: int = 0
    throttled: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)

    def reset(self) -> None:
        self.http_requests = self.batch_requests = self.inner_requests = 0
        self.throttled.clear()
        self.by_status.clear()

    def count(self, status: int) -> None:
        key = str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "http_requests": self.http_requests,
            "batch_requests": self.batch_requests,
            "inner_requests": self.inner_requests,
            "throttled": dict(self.throttled),
            "by_status": dict(self.by_status),
        }
