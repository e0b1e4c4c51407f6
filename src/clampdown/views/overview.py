"""Views of the overview: each number with the link to the list that shows the same set."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from clampdown.views.base import View


class LinkedCountView(View):
    label: str
    count: int
    link: str = Field(description="The console's filtered action center (or list) showing the same set")


class StatusCountsView(View):
    window: str = Field(description="24h or 7d, counted back from generated_at")
    total: LinkedCountView
    statuses: list[LinkedCountView]


class TimeToContainView(View):
    window: str
    contained: int = Field(description="Containments requested in the window whose steps all completed")
    median_seconds: float | None = Field(description="From the request to the last step completed")
    p95_seconds: float | None
    link: str


class RuleFiringView(View):
    rule: str
    at: datetime
    count: int
    link: str


class RulesFiredView(View):
    window: str
    total: LinkedCountView
    firings: list[RuleFiringView] = Field(description="The newest runs of rules that acted, one batch each")


class HealthCheckView(View):
    name: str
    kind: str = Field(description="directory (a configured provider section) or job (of this server)")
    status: str = Field(description='"ok", or what is wrong')


class OverviewView(View):
    generated_at: datetime
    active_containments: LinkedCountView
    actions: list[StatusCountsView] = Field(
        description="Actions requested in the last day and week, per status"
    )
    time_to_contain: TimeToContainView
    failures: list[LinkedCountView] = Field(description="Failed actions of the last week, per error code")
    rules: RulesFiredView
    health: list[HealthCheckView]
