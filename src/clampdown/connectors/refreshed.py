"""A value a connector reads from its provider now and then (a token lifetime policy, the
authorization servers' rules): read at most once every `ttl_seconds`, one read shared by every
caller that asks meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Refreshed(Generic[T]):
    """`read()`'s last answer while it is younger than `ttl_seconds`; a failed read is not kept."""

    def __init__(
        self,
        read: Callable[[], Awaitable[T]],
        ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.ttl_seconds = ttl_seconds
        self._monotonic = monotonic
        self._lock = asyncio.Lock()
        self._kept: tuple[float, T] | None = None  # (good until, value)

    async def get(self) -> T:
        async with self._lock:  # concurrent callers wait for the one read
            if self._kept is not None and self._monotonic() < self._kept[0]:
                return self._kept[1]
            value = await self._read()
            self._kept = (self._monotonic() + self.ttl_seconds, value)
            return value
