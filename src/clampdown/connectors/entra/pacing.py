"""Request pacing shared by every concurrent task of one connector: an optional steady rate,
and a pause that a throttled answer (429/503) imposes on everyone, not only on its own caller."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Spaces requests `interval` seconds apart and holds them all during a pause."""

    def __init__(self, interval: float = 0.0) -> None:
        self.interval = interval
        self._next_slot = 0.0
        self._resume_at = 0.0

    async def acquire(self) -> None:
        """Wait for this request's turn."""
        while True:
            now = time.monotonic()
            if now < self._resume_at:
                await asyncio.sleep(self._resume_at - now)
                continue
            if self.interval <= 0:
                return
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            return

    def completed(self) -> None:
        """A request just got its answer: keep the next one a full interval away from it.

        For a limit of one request per interval this guarantees the spacing where the provider
        counts it (arrival), which spacing by send time alone cannot when latencies differ.
        """
        self._next_slot = max(self._next_slot, time.monotonic() + self.interval)

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` (the provider asked us to back off)."""
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)
        # A paused slot schedule would otherwise release a burst the moment the pause ends.
        self._next_slot = max(self._next_slot, self._resume_at)


class AdaptiveWindow:
    """How many requests (a `$batch` counts its sub-requests) may be in flight: halved when Graph
    throttles, grown by each unthrottled answer's size (AIMD, as TCP does). Without it, every
    task retries the moment a short Retry-After ends and most retries are throttled again."""

    def __init__(self, minimum: int, maximum: int, step: int) -> None:
        self.minimum, self.maximum, self.step = minimum, maximum, step
        self.limit = maximum
        self.in_flight = 0
        self._last_cut = 0.0
        self._condition = asyncio.Condition()

    async def acquire(self, size: int) -> float:
        """Wait until `size` more fit; the start time to pass to `release`."""
        async with self._condition:
            await self._condition.wait_for(lambda: self.in_flight == 0 or self.in_flight + size <= self.limit)
            self.in_flight += size
        return time.monotonic()

    async def release(self, size: int, started: float, throttled: bool) -> None:
        async with self._condition:
            self.in_flight -= size
            if throttled:
                # One cut per round trip: the answers of one congested moment count once.
                if started >= self._last_cut:
                    self.limit = max(self.minimum, self.limit // 2)
                    self._last_cut = time.monotonic()
            else:
                # Grow by what just succeeded: a batch's worth after a batch, one after one request.
                self.limit = min(self.maximum, self.limit + min(self.step, size))
            self._condition.notify_all()
