"""Views of hunts, saved queries, detection rules, their runs and alerts, and the event tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, AliasPath, Field, field_validator

from clampdown.hunting.charts import ChartKind, ChartMode
from clampdown.hunting.query import Language
from clampdown.views.actions import ActionView, RefusedTargetView
from clampdown.views.base import View


class ChartView(View):
    """What a KQL `render` asked to draw, with the axes chosen from the result's columns."""

    kind: ChartKind
    x: str = Field(description="The column on the x axis (a pie's labels)")
    y: list[str] = Field(description="The numeric columns drawn")
    series: list[str] = Field(description="Columns whose values split the rows into series")
    title: str | None = None
    xtitle: str | None = None
    ytitle: str | None = None
    mode: ChartMode = Field(ChartMode.DEFAULT, description="default, unstacked, stacked or stacked100")
    legend: bool = True


class QueryCheckView(View):
    """Whether a query can run as written; if not, the message and where (1-based)."""

    language: Language | None
    valid: bool
    message: str | None = None
    line: int | None = None
    column: int | None = None


class QueryResultView(View):
    language: Language
    columns: list[str]
    column_types: list[str] = Field(default_factory=list, description="DuckDB's type of each column")
    rows: list[list[Any]]
    truncated: bool = Field(description="More rows matched than were returned")
    truncated_by: str | None = Field(
        None, description="Which limit cut the rows: rows (the row limit) or bytes (the result size limit)"
    )
    elapsed_ms: float = Field(validation_alias="elapsed_seconds")
    chart: ChartView | None = Field(None, description="The chart a KQL render clause asked for")

    @field_validator("elapsed_ms", mode="before")
    @classmethod
    def _milliseconds(cls, seconds: Any) -> Any:
        # The domain measures seconds; people read milliseconds.
        return round(float(seconds) * 1000, 3)


class ActOnResultsView(View):
    """A bulk action requested from a hunt: the batch and the distinct accounts it targets."""

    batch_id: str = Field(validation_alias=AliasPath("bulk", "batch_id"))
    targets: list[str]
    actions: list[ActionView] = Field(validation_alias=AliasPath("bulk", "actions"))
    refused: list[RefusedTargetView] = Field(validation_alias=AliasPath("bulk", "refused"))


class SavedQueryView(View):
    id: int
    name: str
    query: str
    owner: str
    description: str
    created_at: datetime


class DetectionRuleView(View):
    id: int
    name: str
    query: str
    owner: str
    interval_seconds: float
    action: str | None = Field(validation_alias=AliasChoices("action_type", "action"))
    account_column: str | None
    enabled: bool
    last_run_at: datetime | None
    armed_by: str = Field(description="Who last created or enabled the rule: it acts with their rights")
    last_run_error: str | None = Field(None, description="Why the last run failed; null if it did not")
    last_run_skipped: int = Field(0, description="Rows the last run alerted on but could not act on")
    last_run_note: str | None = Field(None, description="skipped N rows: why (a target the service refuses)")


class RuleRunView(View):
    rule: str
    rows: int
    new_alerts: int
    batch_id: str | None
    skipped: int = Field(0, description="New rows alerted on but not acted on: their account is refused")
    note: str | None = Field(None, description="skipped N rows: why")
    containment_ids: tuple[int, ...] = Field(
        (), description="A rule that contains (playbook:NAME): the containments it started"
    )


class AlertView(View):
    id: int
    rule_id: int
    row: dict[str, Any]
    account: str | None
    batch_id: str | None
    raised_at: datetime
    skipped: str | None = Field(None, description="Why its account was not acted on")


class EventColumnView(View):
    name: str
    type: str
    description: str = Field(validation_alias=AliasChoices("doc", "description"))


class EventTableView(View):
    name: str
    description: str = Field(validation_alias=AliasChoices("doc", "description"))
    columns: list[EventColumnView]
