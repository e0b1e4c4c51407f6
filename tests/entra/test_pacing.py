"""The tenant's pace: a rate learned from Graph's first 429 and its Retry-After, kept under,
probed upward and cut on a later 429 (a fake clock, so no test waits; concurrent senders on a
virtual clock that jumps to the next wake-up); and a bulk against the real emulator, in a process
of its own, with a small budget that meets few 429s and completes everything."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import socket
import ssl
import subprocess
import sys
import time as wall
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clampdown.connectors.entra import EntraConnector, EntraSettings
from clampdown.connectors.entra.pacing import HINT_SHARE, MARGIN, TenantPacer
from clampdown.model import Account, AccountState, ActionContext
from clampdown_lab.graph_emulator.app import ADMIN_KEY_HEADER
from clampdown_lab.graph_emulator.server import STATE_FILE
from clampdown_lab.graph_emulator.tenant import ALL_ROLES, AppRecord, Tenant, UserRecord, object_id
from clampdown_lab.graph_emulator.throttling import BucketPolicy, ThrottleConfig
from clampdown_lab.graph_emulator.tls import write_tls_files
from tests.entra.support import FULL_APP, SECRET


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class VirtualTime(FakeTime):
    """A clock for many concurrent senders: each sleep waits for its wake-up, and `run` jumps the
    clock to the earliest one whenever every task is waiting."""

    def __init__(self) -> None:
        super().__init__()
        self._wakeups: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._wakeups, (self.now + seconds, next(self._order), woken))
        await woken

    async def run(self, *work: Awaitable[Any]) -> list[Any]:
        tasks = [asyncio.ensure_future(w) for w in work]
        while not all(t.done() for t in tasks):
            for _ in range(20):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._wakeups and not all(t.done() for t in tasks):
                when, _, woken = heapq.heappop(self._wakeups)
                self.now = max(self.now, when)
                woken.set_result(None)
        return [t.result() for t in tasks]


class Bucket:
    """Graph's token bucket, on the fake clock: `rate` per second, up to `burst`."""

    def __init__(self, time: FakeTime, rate: float, burst: float) -> None:
        self.time, self.rate, self.burst = time, rate, burst
        self.tokens, self.stamp = burst, time.now

    def take(self) -> float | None:
        """None if admitted, else the Retry-After (time until one token)."""
        now = self.time.now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


async def send_through(pacer: TenantPacer, bucket: Bucket, count: int) -> tuple[int, list[float]]:
    """Send `count` requests one after another through the pacer to the bucket, each 429
    honoured as Graph asks (pause, then the same request again); (429s met, admission times)."""
    throttled, admitted = 0, []
    for _ in range(count):
        while True:
            booked = await pacer.acquire()
            wait = bucket.take()
            pacer.answered(booked, 1, throttled=wait is not None, hint=wait)
            if wait is None:
                admitted.append(bucket.time.now)
                break
            throttled += 1
            pacer.pause(wait)
    return throttled, admitted


async def test_unknown_budget_is_not_paced() -> None:
    time = FakeTime()
    pacer = TenantPacer(clock=time.clock, sleep=time.sleep)
    for _ in range(100):
        await pacer.acquire(20)
    assert time.now == 100.0 and pacer.requests.rate is None and pacer.items.rate is None


async def test_learns_the_rate_from_the_first_429_and_its_retry_after() -> None:
    time = FakeTime()
    pacer = TenantPacer(clock=time.clock, sleep=time.sleep)
    booked = await pacer.acquire()
    pacer.answered(booked, 1, throttled=True, hint=0.02)  # a bucket refilling 50 a second
    assert pacer.requests.rate == pytest.approx(MARGIN * HINT_SHARE / 0.02)
    assert pacer.items.rate is None  # the whole request was refused: HTTP requests are counted
    pacer.pause(0.02)
    starts = []
    for _ in range(50):
        await pacer.acquire()
        starts.append(time.now)
    assert starts[0] == pytest.approx(100.02)  # the Retry-After held the tenant
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) == pytest.approx(1 / pacer.requests.rate)  # starts spaced at the learned rate


async def test_a_bulk_stays_under_the_learned_budget() -> None:
    time = FakeTime()
    pacer = TenantPacer(clock=time.clock, sleep=time.sleep)
    bucket = Bucket(time, rate=50, burst=50)
    throttled, admitted = await send_through(pacer, bucket, 1000)
    assert throttled <= 0.05 * (1000 + throttled)
    # The burst, then the budget: within 10% of the least time the bucket allows.
    assert admitted[-1] - 100.0 <= 1.1 * (1000 - 50) / 50
    assert pacer.requests.lessons >= 1


async def test_an_underestimate_recovers_upward() -> None:
    time = FakeTime()
    pacer = TenantPacer(clock=time.clock, sleep=time.sleep)
    booked = await pacer.acquire()
    pacer.answered(booked, 1, throttled=True, hint=0.2)  # says about 5 a second
    learned = pacer.requests.rate
    assert learned is not None and learned < 5
    bucket = Bucket(time, rate=50, burst=1)  # the budget is really 50 a second
    throttled, _ = await send_through(pacer, bucket, 500)
    assert throttled == 0
    assert pacer.requests.rate > 2 * learned  # the additive probe found room


async def test_a_later_429_cuts_the_rate() -> None:
    time = FakeTime()
    pacer = TenantPacer(clock=time.clock, sleep=time.sleep)
    booked = await pacer.acquire()
    pacer.answered(booked, 1, throttled=True, hint=0.01)
    learned = pacer.requests.rate
    assert learned is not None
    # Answers to requests booked before the lesson are the same congested moment: no cut.
    pacer.answered(booked, 1, throttled=True, hint=0.005)
    assert pacer.requests.rate == learned
    await time.sleep(1)
    later = await pacer.acquire()
    pacer.answered(later, 1, throttled=True, hint=0.001)
    assert pacer.requests.rate is not None and pacer.requests.rate < learned


async def test_a_later_lesson_measures_the_budget_by_send_time() -> None:
    """Hints that all fall short of a whole token (Graph named 0.8 of the wait) make the first
    estimate above the budget; the next 429 must bring the pace under it at once, measured from
    what Graph admitted between two refusals by the time each was sent. 32 senders queue for their
    turns, so a request asks long before it goes: measured by that time, the admitted rate looked
    far above the budget and each later lesson cut the pace only by the margin."""
    time = VirtualTime()
    pacer = TenantPacer(clock=time.clock, sleep=time.sleep)
    bucket = Bucket(time, rate=50, burst=50)
    latency = 0.05
    throttled_at: list[float] = []

    async def sender(count: int) -> None:
        for _ in range(count):
            while True:
                turn = await pacer.acquire()
                await time.sleep(latency)  # on its way to Graph
                wait = bucket.take()
                hint = None if wait is None else 0.8 * wait
                await time.sleep(0.001)  # the answer on its way back
                pacer.answered(turn, 1, throttled=wait is not None, hint=hint)
                if wait is None:
                    break
                throttled_at.append(time.now)
                pacer.pause(hint or 0.0)

    await time.run(*(sender(25) for _ in range(32)))  # 800 requests, floor (800 - 50) / 50 = 15 s
    first_moment = [t for t in throttled_at if t <= throttled_at[0] + 2 * latency]
    assert pacer.requests.lessons >= 2  # the first estimate was above the budget: it was refused again
    assert len(throttled_at) - len(first_moment) <= 2
    assert time.now - 100.0 <= 1.1 * 15


async def test_throttled_sub_requests_teach_the_sub_request_rate() -> None:
    time = FakeTime()
    pacer = TenantPacer(clock=time.clock, sleep=time.sleep)
    booked = await pacer.acquire(20)
    pacer.answered(booked, 20, items_throttled=5, items_hint=0.004)  # 250 sub-requests a second
    assert pacer.requests.rate is None
    rate = pacer.items.rate
    assert rate == pytest.approx(MARGIN * HINT_SHARE / 0.004)
    first = time.now
    for _ in range(10):
        await pacer.acquire(20)
    assert time.now - first == pytest.approx(9 * 20 / rate)  # a $batch of 20 costs 20


async def test_configured_rate_is_a_ceiling() -> None:
    time = FakeTime()
    pacer = TenantPacer(10.0, clock=time.clock, sleep=time.sleep)
    bucket = Bucket(time, rate=1000, burst=1000)
    await send_through(pacer, bucket, 101)
    assert time.now == pytest.approx(110.0) and pacer.requests.rate == 10.0


async def test_a_pause_holds_requests_already_waiting_for_their_turn() -> None:
    time = FakeTime()
    pacer = TenantPacer(1.0, clock=time.clock, sleep=time.sleep)
    await pacer.acquire()
    waiting = asyncio.ensure_future(pacer.acquire())  # its turn is at 101
    pacer.pause(5)
    await waiting
    assert time.now >= 105.0


ADMIN_KEY = "pacing-admin-key"
BULK_USERS = 3000  # 150 `$batch`es of 20
# Small enough that a client on a loaded host still outruns it and has to learn it.
BUDGET = BucketPolicy(rate=25, burst=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """A Graph emulator in a process of its own (as the lab runs it), so the client's event loop
    and the emulator's never take turns on one interpreter: arrivals at its token bucket are the
    client's pace, not the order two loops got the GIL in."""

    def __init__(self, home: Path, throttle: ThrottleConfig, users: int) -> None:
        self.home = home
        tenant = Tenant()
        tenant.apps[FULL_APP] = AppRecord(FULL_APP, "Clampdown", list(ALL_ROLES), secrets=[SECRET])
        self.accounts = []
        for n in range(users):
            upn = f"paced{n:05d}@{tenant.domain}"
            user = tenant.add_user(
                UserRecord(id=object_id("user", upn), userPrincipalName=upn, displayName=upn)
            )
            self.accounts.append(Account(provider="entra", id=user.id, name=upn))
        tenant.save(home / STATE_FILE)
        self.tenant_id = tenant.tenant_id
        (home / "throttle.json").write_text(throttle.model_dump_json(), encoding="utf-8")
        (home / "admin-key").write_text(ADMIN_KEY, encoding="utf-8")
        self.ca_path = write_tls_files(home / "tls")[0]
        self.url = f"https://127.0.0.1:{_free_port()}"
        command = [
            sys.executable, "-m", "clampdown_lab.graph_emulator", "--state", str(home),
            "--port", self.url.rsplit(":", 1)[1], "--admin-key-file", str(home / "admin-key"),
            "--throttle", str(home / "throttle.json"),
        ]  # fmt: skip
        with (home / "emulator.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = wall.monotonic() + 30
        while True:
            try:
                if self.admin().get("/_emulator/health").status_code == 200:
                    return
            except httpx.HTTPError:
                if wall.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError((home / "emulator.log").read_text(encoding="utf-8")) from None
                wall.sleep(0.1)

    def admin(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.ca_path))
        return httpx.Client(
            base_url=self.url, verify=verify, headers={ADMIN_KEY_HEADER: ADMIN_KEY}, timeout=60
        )

    def settings(self) -> EntraSettings:
        return EntraSettings(
            tenant_id=self.tenant_id,
            client_id=FULL_APP,
            client_secret=SECRET,
            authority_host=self.url,
            graph_url=f"{self.url}/v1.0",
            ca_bundle=self.ca_path,
            instance_discovery=False,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def small_budget(tmp_path: Path) -> Iterator[EmulatorProcess]:
    """3,000 users behind a budget of 25 HTTP requests a second (burst 10)."""
    throttle = ThrottleConfig(requests=BUDGET)
    emulator = EmulatorProcess(tmp_path, throttle, BULK_USERS)
    yield emulator
    emulator.stop()


async def test_bulk_against_a_small_budget_meets_few_429s(small_budget: EmulatorProcess) -> None:
    accounts = small_budget.accounts
    before = AccountState(enabled=True, status="enabled", values={"accountEnabled": True})
    conn = EntraConnector(small_budget.settings())
    try:
        await conn.tokens.token()
        limit = asyncio.Semaphore(32)  # the engine's provider concurrency, 60 users per call

        async def group(start: int) -> list[object]:
            chunk = accounts[start : start + conn.max_batch]
            async with limit:
                pairs = [
                    (a, ActionContext(action_id=start + i, reason="x", requested_by="y", state_before=before))
                    for i, a in enumerate(chunk)
                ]
                return list(await conn.perform_batch("suspend_user", pairs))

        gathered = await asyncio.gather(*(group(s) for s in range(0, BULK_USERS, 60)))
        results = [r for g in gathered for r in g]
    finally:
        await conn.aclose()
    assert not [r for r in results if isinstance(r, Exception)]
    with small_budget.admin() as admin:
        counters = admin.get("/_emulator/counters").json()
        users = {u["id"]: u for u in admin.get("/_emulator/users").json()}
    assert all(users[a.id]["accountEnabled"] is False for a in accounts)
    throttled = counters["throttled"].get("requests", 0)
    assert counters["http_requests"] == BULK_USERS // 20 + throttled  # every 429 resent once, nothing else
    # Unpaced, about half of all requests met a 429.
    assert 0 < throttled <= 0.10 * counters["http_requests"], counters
