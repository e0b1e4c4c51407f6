"""The one retry policy: exponential backoff with jitter, yielding to the provider's own hint."""

from __future__ import annotations

import random
from dataclasses import dataclass

_RNG = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 2.0
    max_seconds: float = 300.0

    def should_retry(self, attempts_made: int) -> bool:
        """Whether another attempt is allowed after `attempts_made` attempts."""
        return attempts_made < self.max_attempts

    def delay(
        self, attempts_made: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before the next attempt.

        Without a hint: base * 2^(n-1), capped, with "equal jitter" (half fixed, half random) so
        a burst of failures does not come back as a burst. With the provider's Retry-After or
        rate-limit reset, that time plus a little jitter: earlier would only be refused again.
        """
        rand = rng or _RNG
        if retry_after is not None and retry_after >= 0:
            return retry_after + rand.uniform(0, min(1.0, 0.1 * retry_after + 0.05))
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempts_made - 1))
        return ceiling / 2 + rand.uniform(0, ceiling / 2)
