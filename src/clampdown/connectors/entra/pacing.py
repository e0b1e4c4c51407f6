"""Request pacing shared by every concurrent task of one connector, that is of one tenant.

`TenantPacer` spaces request starts at a rate it learns from Graph's first 429: Graph's identity
limits are token buckets, so a 429's Retry-After is the time until the bucket admits one more
request, and its inverse bounds the bucket's refill rate from above. From then on starts are
paced a little under that bound, probed upward additively while Graph keeps answering, and cut
on a later 429 (under what Graph was measured to admit between two refusals, by send time, or
multiplicatively). Every Retry-After pauses the whole tenant, every lesson for one round trip
more (what was in flight lands first), and turns booked at a pace a lesson lowered are booked
again at the new one. Two rates are learned apart, because Graph counts two ways: a whole
request refused (the HTTP request is what is counted) teaches the rate of HTTP requests,
sub-requests refused inside a `$batch` (each is counted) the rate of sub-requests. Before any
429 nothing is paced but the requests in flight (`AdaptiveWindow`). Everything runs on one event
loop and no lock is held while waiting; the clock and the sleep are injected, so tests move time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# Paced this far under the rate Graph was seen to refuse: arrival times jitter (latency, a loaded
# host), and a bucket kept a few tokens short of empty absorbs it instead of answering 429.
MARGIN = 0.95
# A rate read from a Retry-After is an upper bound: this share of it is taken as the estimate.
HINT_SHARE = 0.9
# The upward probe, added per second's worth of answers: this share of the rate at the lesson
# while under the margin of the refused rate, a tenth of it above (a budget may grow, and only a
# probe finds out). After QUIET_SECONDS at the pace without a 429 the refusal is forgotten.
PROBE = 0.05
PROBE_ABOVE_MARGIN = 0.1
QUIET_SECONDS = 10.0
# A 429 at the learned pace (one per congested moment) cuts the rate by this factor.
BACKOFF = 0.9
MAX_LESSON_PAUSE = 1.0  # seconds: the round trip waited out after a lesson, at most
MINIMUM_RATE = 0.1  # requests per second: at least one every ten seconds
# What Graph admitted replaces a guess once it spans this long and counts this many units.
MEASURED_SPAN = 0.25
MEASURED_UNITS = 5
MEASURED_HISTORY = 10.0  # seconds of refusals and admissions kept for that measure


@dataclass(frozen=True)
class Turn:
    """A request's place in the tenant's pace: when it asked for its turn, and when it went."""

    booked: float
    sent: float


@dataclass
class LearnedRate:
    """One counted unit's pace: unknown (unpaced) until a 429 teaches it, or fixed from settings."""

    rate: float | None = None
    ceiling: float | None = None  # the configured requests_per_second: never paced faster
    refused: float | None = None  # the rate Graph refused last: probed beyond only slowly
    learned: float = 0.0  # the first lesson's estimate
    step: float = 0.0  # the probe at full speed, added per second's worth of answers
    next_slot: float = 0.0
    learned_at: float | None = None  # requests booked before it belong to the last lesson
    lessons: int = 0  # congested moments learned from
    admitted_since_lesson: float = 0.0  # units admitted among those booked since the last lesson
    # When refused requests were sent (the bucket was empty when each arrived) and admitted ones
    # (with their units), over the last MEASURED_HISTORY: what Graph admitted between two
    # refusals is its budget.
    refusals: deque[float] = field(default_factory=deque)
    admissions: deque[tuple[float, float]] = field(default_factory=deque)

    def reserve(self, now: float, cost: float) -> float:
        """The start time for a request of `cost` units at or after `now`, and book it."""
        if self.rate is None:
            return now
        slot = max(now, self.next_slot)
        self.next_slot = slot + cost / self.rate
        return slot

    def answered(self, turn: Turn, cost: float) -> None:
        """Answers admitting `cost` units sent on `turn`: remember them, and probe upward
        additively (per second's worth of answers)."""
        if cost <= 0:
            return
        self.admissions.append((turn.sent, cost))
        while self.admissions and self.admissions[0][0] < turn.sent - MEASURED_HISTORY:
            self.admissions.popleft()
        if self.learned_at is not None:
            if turn.booked <= self.learned_at:
                return  # sent at the pace the lesson corrected: no reason to grow
            self.admitted_since_lesson += cost
        if self.rate is None or self.step <= 0:
            return
        step = self.step
        if self.refused is not None and self.admitted_since_lesson > QUIET_SECONDS * self.rate:
            self.refused = None
        if self.refused is not None and self.rate >= MARGIN * self.refused:
            step *= PROBE_ABOVE_MARGIN
        grown = self.rate + step * cost / self.rate
        self.rate = grown if self.ceiling is None else min(self.ceiling, grown)

    def measured(self, refused_sent: float) -> float | None:
        """What Graph admitted per second between the earliest refusal remembered and one sent at
        `refused_sent`, by send time: a token bucket empty at both refusals admitted its refill
        in between, give or take a unit. None when too short or too few to tell."""
        while self.refusals and self.refusals[0] < refused_sent - MEASURED_HISTORY:
            self.refusals.popleft()
        if not self.refusals:
            return None
        first = self.refusals[0]
        span = refused_sent - first
        units = sum(c for sent, c in self.admissions if first < sent < refused_sent)
        if span < MEASURED_SPAN or units < MEASURED_UNITS:
            return None
        return units / span

    def throttled(self, now: float, turn: Turn, hint: float | None, sent_rate: float) -> None:
        """A 429 for a request sent on `turn`; `hint` its Retry-After, `sent_rate` the rate of
        starts over the last second (the estimate when Graph names no wait)."""
        measured = self.measured(turn.sent)
        self.refusals.append(turn.sent)
        # A token bucket's Retry-After is the time until it admits one more request: its refill
        # rate is the inverse, or less (less than a whole token may have been missing), so a
        # hint is discounted further than a measured rate.
        estimate = HINT_SHARE / hint if hint else sent_rate / 2
        if self.ceiling is not None:
            estimate = min(estimate, self.ceiling)
        estimate = max(estimate, MINIMUM_RATE)
        if self.learned_at is not None and turn.booked <= self.learned_at:
            # Booked before the last lesson: the same congested moment. While it is the first
            # lesson, each further hint can only narrow the estimate (the longest is the nearest
            # to a whole token).
            if self.lessons == 1 and hint and self.refused is not None and estimate < self.learned:
                self.learned, self.refused = estimate, estimate / HINT_SHARE
                self.rate = min(self.rate or estimate, MARGIN * estimate)
                self.step = PROBE * self.rate
            return
        self.lessons += 1
        if self.lessons == 1:
            self.learned = estimate
            self.refused = estimate / HINT_SHARE if hint else estimate
            self.rate = MARGIN * estimate if self.rate is None else min(self.rate, MARGIN * estimate)
            self.step = PROBE * self.rate
        else:
            # Refused at the learned pace: it was above the budget (then what Graph admitted
            # between refusals is the budget), or arrivals jittered against a bucket with no
            # slack left (the pause below gives it some; the pace, under the budget, stays).
            rate = self.rate or estimate
            if measured is not None:
                self.refused = measured
                self.rate = max(MINIMUM_RATE, min(rate, MARGIN * measured))
            else:
                self.refused = rate
                self.rate = max(MINIMUM_RATE, rate * BACKOFF)
        self.learned_at = now
        self.admitted_since_lesson = 0.0


class TenantPacer:
    """The pace of one tenant's requests: a pause any Retry-After imposes on all of them, and the
    learned rates of HTTP requests and of sub-requests."""

    def __init__(
        self,
        requests_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.clock, self.sleep = clock, sleep
        self.requests = LearnedRate(rate=requests_per_second, ceiling=requests_per_second)
        self.items = LearnedRate()
        self._resume_at = 0.0
        self._slowed = 0  # lessons that lowered a rate: a turn booked before one is booked again
        self._recent: deque[tuple[float, int]] = deque()  # (start, sub-requests) over the last second

    async def acquire(self, weight: int = 1) -> Turn:
        """Wait for this request's turn (`weight`: its sub-requests); the turn, to pass to
        `answered`."""
        while True:
            now = self.clock()
            if now < self._resume_at:
                await self.sleep(self._resume_at - now)
                continue
            booked, slowed = now, self._slowed
            slot = max(self.requests.reserve(now, 1), self.items.reserve(now, weight))
            if slot > now:
                await self.sleep(slot - now)
                if self.clock() < self._resume_at or self._slowed != slowed:
                    # A 429 paused the tenant or slowed its pace meanwhile: this turn was booked at
                    # the pace Graph refused, book again behind the pause at the new one.
                    continue
            started = max(slot, self.clock())
            while self._recent and self._recent[0][0] <= started - 1.0:
                self._recent.popleft()
            self._recent.append((started, weight))
            return Turn(booked, started)

    def pause(self, seconds: float) -> None:
        """Hold every request of the tenant for `seconds` (Graph asked us to back off)."""
        self._resume_at = max(self._resume_at, self.clock() + seconds)
        # A slot schedule left behind the pause would release a burst the moment it ends.
        for rate in (self.requests, self.items):
            rate.next_slot = max(rate.next_slot, self._resume_at)

    def answered(
        self,
        turn: Turn,
        weight: int,
        throttled: bool = False,
        hint: float | None = None,
        items_throttled: int = 0,
        items_hint: float | None = None,
    ) -> None:
        """Learn from one answer: a whole request refused (`throttled`, with Retry-After `hint`), or
        `items_throttled` of its `weight` sub-requests refused (the longest Retry-After `items_hint`)."""
        now = self.clock()
        lessons = self.requests.lessons + self.items.lessons
        rates = (self.requests.rate, self.items.rate)
        if throttled:
            sent = sum(1 for t, _ in self._recent if t > now - 1.0)
            self.requests.throttled(now, turn, hint, float(sent))
        else:
            self.requests.answered(turn, 1)
            if items_throttled:
                sent_items = sum(w for t, w in self._recent if t > now - 1.0)
                self.items.throttled(now, turn, items_hint, float(sent_items))
            self.items.answered(turn, weight - items_throttled)
        for rate, before in zip((self.requests, self.items), rates, strict=True):
            if before is not None and rate.rate is not None and rate.rate < before:
                # The turns already booked were spaced at the rate Graph just refused: sent as
                # booked, they would meet more 429s before the lesson took effect.
                self._slowed += 1
                rate.next_slot = min(rate.next_slot, max(now, self._resume_at))
        if self.requests.lessons + self.items.lessons > lessons:
            # A lesson: what was sent in the round trip before it is answered 429 too (the first
            # lesson's hints refine the estimate), and arrives before anything sent now; send
            # nothing new until it is back, or the new pace meets the old one's bucket still empty.
            self.pause(min(now - turn.sent, MAX_LESSON_PAUSE))


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
    task retries the moment a short Retry-After ends and most retries are throttled again.

    Until Graph first throttles, the window starts at `initial` and grows by one `step` per
    window's worth of answers: a 429 answers every request sent in the round trip before it, so
    what is in flight when an unknown budget runs out is what learning it costs."""

    def __init__(self, minimum: int, maximum: int, step: int, initial: int | None = None) -> None:
        self.minimum, self.maximum, self.step = minimum, maximum, step
        self.limit = float(maximum if initial is None else max(minimum, min(maximum, initial)))
        self.in_flight = 0
        self.throttled_once = False
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
                self.throttled_once = True
                # One cut per round trip: the answers of one congested moment count once.
                if started >= self._last_cut:
                    self.limit = max(float(self.minimum), self.limit / 2)
                    self._last_cut = time.monotonic()
            elif self.throttled_once:
                # Grow by what just succeeded: a batch's worth after a batch, one after one request.
                self.limit = min(float(self.maximum), self.limit + min(self.step, size))
            else:
                self.limit = min(float(self.maximum), self.limit + self.step * size / self.limit)
            self._condition.notify_all()
