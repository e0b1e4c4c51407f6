"""/api/v1/hunting: run KQL or SQL hunts, keep saved queries, and act on the accounts a hunt found."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.api.schemas import Text
from clampdown.auth.principal import Principal
from clampdown.hunting.query import Language
from clampdown.hunting.service import HuntingService
from clampdown.limits import (
    MAX_ACTION_TYPE,
    MAX_BULK_IDEMPOTENCY_KEY,
    MAX_NAME,
    MAX_QUERY,
    MAX_REASON,
)
from clampdown.views import (
    ActOnResultsView,
    AlertView,
    DetectionRuleView,
    EventTableView,
    QueryCheckView,
    QueryResultView,
    RuleRunView,
    SavedQueryView,
)

router = APIRouter(prefix="/api/v1/hunting", tags=["hunting"], responses=ERRORS)
CallerDep = Annotated[Principal, Depends(current_principal)]
SavedRef = Annotated[str, Path(min_length=1, max_length=MAX_NAME, description="Saved query id or name")]


def hunting(request: Request) -> HuntingService:
    """One service per app, created on first use so the event file exists only once hunting is used."""
    service: HuntingService | None = getattr(request.app.state, "hunting", None)
    if service is None:
        service = HuntingService.from_runtime(runtime(request))
        request.app.state.hunting = service
    return service


HuntingDep = Annotated[HuntingService, Depends(hunting)]


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Text = Field(min_length=1, max_length=MAX_QUERY, description="KQL or DuckDB SQL")
    language: Language | None = Field(None, description="kql or sql; guessed from the text when omitted")
    max_rows: int | None = Field(None, ge=1, le=1_000_000, description="At most the server's limit")


class SavedQueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=MAX_NAME)
    query: Text = Field(min_length=1, max_length=MAX_QUERY)
    description: Text = Field("", max_length=MAX_REASON)


class ActIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Text = Field(min_length=1, max_length=MAX_QUERY)
    language: Language | None = None
    column: Text = Field(min_length=1, max_length=MAX_NAME, description="The result column holding accounts")
    action: Text = Field(
        max_length=MAX_ACTION_TYPE, description="Action id from the catalog, e.g. ad.disable_user"
    )
    reason: Text = Field(max_length=MAX_REASON, description="Why; recorded with every action")


@router.post("/query", response_model=QueryResultView)
async def run_hunting_query(body: QueryIn, caller: CallerDep, service: HuntingDep) -> QueryResultView:
    """Run one read-only query; errors name the line and column at fault (also as `line` and
    `column` in the error). A KQL `render` clause comes back as `chart`, its axes chosen."""
    result = await service.query(caller, body.query, body.language, body.max_rows)
    return QueryResultView.model_validate(result)


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Text = Field(max_length=MAX_QUERY, description="KQL or DuckDB SQL")
    language: Language | None = Field(None, description="kql or sql; guessed from the text when omitted")


@router.post("/check", response_model=QueryCheckView)
async def check_hunting_query(body: CheckIn, caller: CallerDep, service: HuntingDep) -> QueryCheckView:
    """Whether a query can run as written (syntax, KQL translation, render clause), with the line
    and column of its mistake; runs nothing (the console's editor calls it as you type)."""
    return QueryCheckView.model_validate(await service.check(caller, body.query, body.language))


@router.get("/schema", response_model=list[EventTableView])
async def hunting_schema(caller: CallerDep, service: HuntingDep) -> list[EventTableView]:
    """The event tables and their documented columns."""
    return [EventTableView.model_validate(t) for t in await service.schema(caller)]


@router.post("/act", status_code=202, response_model=ActOnResultsView)
async def act_on_results(
    body: ActIn,
    caller: CallerDep,
    service: HuntingDep,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_BULK_IDEMPOTENCY_KEY)] = None,
) -> ActOnResultsView:
    """Run the query and queue the action on every distinct account in `column`, as one batch."""
    done = await service.act_on_results(
        caller, body.query, body.column, body.action, body.reason,
        language=body.language, idempotency_key=idempotency_key,
    )  # fmt: skip
    return ActOnResultsView.model_validate(done)


@router.get("/queries", response_model=list[SavedQueryView])
async def list_saved(caller: CallerDep, service: HuntingDep) -> list[SavedQueryView]:
    """Every saved query, by name."""
    return [SavedQueryView.model_validate(s) for s in await service.saved(caller)]


def source_address(request: Request) -> str | None:
    """The caller's address, recorded with every change it makes."""
    return request.client.host if request.client else None


@router.post("/queries", status_code=201, response_model=SavedQueryView)
async def save(
    body: SavedQueryIn, caller: CallerDep, service: HuntingDep, request: Request
) -> SavedQueryView:
    """Save a query under a unique name (needs hunting:manage); it must run."""
    saved = await service.save(
        caller, body.name, body.query, body.description, source=source_address(request)
    )
    return SavedQueryView.model_validate(saved)


@router.get("/queries/{ref}", response_model=SavedQueryView)
async def get_saved(ref: SavedRef, caller: CallerDep, service: HuntingDep) -> SavedQueryView:
    """One saved query."""
    return SavedQueryView.model_validate(await service.get_saved(caller, ref))


@router.post("/queries/{ref}/run", response_model=QueryResultView)
async def run_saved(ref: SavedRef, caller: CallerDep, service: HuntingDep) -> QueryResultView:
    """Run a saved query."""
    saved = await service.get_saved(caller, ref)
    return QueryResultView.model_validate(await service.query(caller, saved.query))


@router.delete("/queries/{ref}", status_code=204)
async def delete_saved(ref: SavedRef, caller: CallerDep, service: HuntingDep, request: Request) -> None:
    """Delete a saved query (needs hunting:manage)."""
    await service.delete_saved(caller, ref, source=source_address(request))


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=MAX_NAME)
    query: Text = Field(min_length=1, max_length=MAX_QUERY)
    interval_seconds: float = Field(300.0, ge=60, le=7 * 86400, description="How often the rule runs")
    action: Text | None = Field(
        None,
        max_length=MAX_ACTION_TYPE,
        description="Action to request on each account found, or playbook:NAME to contain each person found",
    )
    account_column: Text | None = Field(
        None, max_length=MAX_NAME, description="The column holding the accounts"
    )


class RuleState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


@router.get("/rules", response_model=list[DetectionRuleView])
async def list_rules(caller: CallerDep, service: HuntingDep) -> list[DetectionRuleView]:
    """Every detection rule."""
    return [DetectionRuleView.model_validate(r) for r in await service.rules(caller)]


@router.post("/rules", status_code=201, response_model=DetectionRuleView)
async def create_rule(
    body: RuleIn, caller: CallerDep, service: HuntingDep, request: Request
) -> DetectionRuleView:
    """A rule owned and armed by the caller; it acts with the caller's rights at each run (one that
    acts needs the caller to be allowed its action)."""
    rule = await service.create_rule(
        caller, body.name, body.query, body.interval_seconds, body.action, body.account_column,
        source=source_address(request),
    )  # fmt: skip
    return DetectionRuleView.model_validate(rule)


@router.patch("/rules/{ref}", response_model=DetectionRuleView)
async def change_rule(
    ref: SavedRef, body: RuleState, caller: CallerDep, service: HuntingDep, request: Request
) -> DetectionRuleView:
    """Turn a rule on (arming it as the caller, who needs its action's rights) or off."""
    changed = await service.set_rule_enabled(caller, ref, body.enabled, source=source_address(request))
    return DetectionRuleView.model_validate(changed)


@router.post("/rules/{ref}/run", response_model=RuleRunView)
async def run_rule_now(
    ref: SavedRef, caller: CallerDep, service: HuntingDep, request: Request
) -> RuleRunView:
    """Evaluate a rule now (the caller needs its action's rights), as whoever armed it."""
    run = await service.run_rule_now(caller, ref, source=source_address(request))
    return RuleRunView.model_validate(run)


@router.get("/alerts", response_model=list[AlertView])
async def list_alerts(
    caller: CallerDep, service: HuntingDep, rule: Annotated[str | None, Query(max_length=MAX_NAME)] = None
) -> list[AlertView]:
    """Alerts raised by detection rules, newest first."""
    return [AlertView.model_validate(a) for a in await service.alerts(caller, rule)]
