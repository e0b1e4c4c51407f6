"""The overview: the incident at a glance. Who is contained now, what was asked for and what failed
over the last day and week, how long containment takes, what detection rules did, and whether the
directories and background jobs are healthy.

Every number comes with the link to the filtered action center (or containments list) that shows
the same set, so a number can always be checked by following it.
"""

from __future__ import annotations

import asyncio
import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from clampdown.auth.principal import Principal
from clampdown.errors import ClampdownError
from clampdown.model import ActionSource, ActionStatus, ContainmentState
from clampdown.store.overview import OverviewStore, percentile

if TYPE_CHECKING:
    from clampdown.services.runtime import Runtime

# The windows, as the action center names its periods (web/action_center.PERIODS).
DAY, WEEK = "24h", "7d"
WINDOWS = {DAY: timedelta(days=1), WEEK: timedelta(days=7)}
PENDING = (ActionStatus.AWAITING_APPROVAL, ActionStatus.QUEUED, ActionStatus.RUNNING)
HEALTH_SECONDS = 5.0  # a directory that does not answer within this shows as "timed out"
FIRINGS_SHOWN = 10
ACTIVE_LIST_LIMIT = 10_000  # a scoped reader's active containments are counted from the list


def action_center_link(**params: str) -> str:
    """The console's action center filtered by `params` (its query string)."""
    status = params.get("status")
    tab = params.pop("tab", None) or (
        "pending" if status in {s.value for s in PENDING} else "history" if status else "all"
    )
    return "/actions?" + urlencode({"tab": tab, **{k: v for k, v in params.items() if v}})


@dataclass(frozen=True)
class LinkedCount:
    """A number and the filtered list that shows the same set."""

    label: str
    count: int
    link: str


@dataclass(frozen=True)
class StatusCounts:
    """The actions requested within one window (24h or 7d), per status."""

    window: str
    total: LinkedCount
    statuses: list[LinkedCount]


@dataclass(frozen=True)
class TimeToContain:
    """Of the containments requested within the window whose steps all completed: from the request
    to the last step completed, in seconds."""

    window: str
    contained: int
    median_seconds: float | None
    p95_seconds: float | None
    link: str


@dataclass(frozen=True)
class RuleFiringCount:
    rule: str  # the rule's name
    at: datetime
    count: int
    link: str


@dataclass(frozen=True)
class RulesFired:
    window: str
    total: LinkedCount
    firings: list[RuleFiringCount]


@dataclass(frozen=True)
class HealthCheck:
    """A configured directory, or a background job of this server: "ok", or what is wrong."""

    name: str
    kind: str  # directory or job
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Overview:
    generated_at: datetime
    active_containments: LinkedCount
    actions: list[StatusCounts]
    time_to_contain: TimeToContain
    failures: list[LinkedCount]  # over the week, per error code
    rules: RulesFired
    health: list[HealthCheck] = field(default_factory=list)


def _rule_name(reason: str) -> str:
    """The rule's name from its actions' reason ("detection rule 'NAME'")."""
    prefix = "detection rule "
    if reason.startswith(prefix):
        return reason[len(prefix) :].strip("'")
    return reason


class OverviewService:
    """Computes the overview for one reader: the numbers of what they may see (their scope)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store = OverviewStore(runtime.engine)

    async def overview(self, principal: Principal, *, health: bool = True) -> Overview:
        """Every number of the overview, for a reader of the action center."""
        rt = self.runtime
        await rt.actions.authorize_read(principal)
        now = rt.actions.clock.now()
        scope = principal.scope
        week = now - WINDOWS[WEEK]
        per_window = [await self._status_counts(w, now - span, scope) for w, span in WINDOWS.items()]
        failures = [
            LinkedCount(code or "(none)", n, action_center_link(status="failed", error_code=code, since=WEEK))
            for code, n in await self.store.failures_by_reason(week, scope)
        ]
        total, firings = await self.store.rule_firings(week, scope, FIRINGS_SHOWN)
        rules = RulesFired(
            WEEK,
            LinkedCount("actions by detection rules", total,
                        action_center_link(source=ActionSource.RULE.value, since=WEEK)),
            [RuleFiringCount(_rule_name(f.reason), f.at, f.actions, action_center_link(batch=f.batch_id))
             for f in firings],
        )  # fmt: skip
        timings = await self.store.containment_timings(week, scope)
        seconds = [t.seconds for t in timings]
        time_to_contain = TimeToContain(
            WEEK,
            len(seconds),
            statistics.median(seconds) if seconds else None,
            percentile(seconds, 0.95),
            "/containments?state=all",
        )
        active = LinkedCount(
            "active containments", await self._active(principal), "/containments?state=active"
        )
        checks = await self.health(principal) if health else []
        return Overview(now, active, per_window, time_to_contain, failures, rules, checks)

    async def _status_counts(
        self, window: str, since: datetime, scope: frozenset[str] | None
    ) -> StatusCounts:
        counts = await self.store.actions_by_status(since, scope)
        statuses = [
            LinkedCount(s.value, counts.get(s, 0), action_center_link(status=s.value, since=window))
            for s in ActionStatus
        ]
        total = LinkedCount("actions", sum(counts.values()), action_center_link(since=window))
        return StatusCounts(window, total, statuses)

    async def _active(self, principal: Principal) -> int:
        """Active containments (partly contained too), as the containments list shows them."""
        if principal.scope is None:
            return await self.store.open_containments()
        states = [ContainmentState.ACTIVE, ContainmentState.PARTLY_CONTAINED]
        playbooks = self.runtime.playbooks
        listed = await playbooks.containments_of(principal, states=states, limit=ACTIVE_LIST_LIMIT)
        return len(listed)

    async def health(self, principal: Principal) -> list[HealthCheck]:
        """What /readyz knows: each directory the reader may see, asked now (at most
        HEALTH_SECONDS, all at once), and this server's background jobs."""
        rt = self.runtime
        seen = rt.actions.directories(principal)

        async def check(name: str) -> HealthCheck:
            try:
                async with asyncio.timeout(HEALTH_SECONDS):
                    await seen[name].check()
                return HealthCheck(name, "directory", "ok")
            except TimeoutError:
                return HealthCheck(name, "directory", "timed out")
            except ClampdownError as exc:
                return HealthCheck(name, "directory", exc.message)
            except Exception as exc:  # a driver's error: shown, never a failed page
                return HealthCheck(name, "directory", f"{type(exc).__name__}: {exc}")

        directories = await asyncio.gather(*(check(n) for n in sorted(seen)))
        jobs = [HealthCheck(j.name, "job", j.describe()) for j in rt.job_health()]
        return [*directories, *jobs]
