"""/api/v1 playbooks, dry-run plans, approvals and the audit chain's health."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.api.schemas import INCIDENT_FIELD, Text
from clampdown.auth.principal import Principal, require_permission, require_unscoped
from clampdown.limits import (
    MAX_ACTION_TYPE,
    MAX_BATCH_ID,
    MAX_DECISION_IDS,
    MAX_ID,
    MAX_INSTANCE,
    MAX_PLAN_TARGETS,
    MAX_PLAYBOOK_NAME,
    MAX_REASON,
    MAX_TARGET,
)
from clampdown.permissions import SETTINGS_MANAGE
from clampdown.services.planning import plan_actions
from clampdown.views import ActionView, AuditReportView, PlanItemView, PlaybookRunView

router = APIRouter(prefix="/api/v1", tags=["guardrails"], responses=ERRORS)
CallerDep = Annotated[Principal, Depends(current_principal)]


class PlaybookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: Text = Field(max_length=MAX_TARGET, description="The person: any name, UPN, email or id")
    reason: Text = Field(max_length=MAX_REASON)
    until: datetime | None = Field(default=None, description="Release automatically at this time")
    request_approval: bool = False
    dry_run: bool = False
    incident: Text | None = INCIDENT_FIELD


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Text = Field(max_length=MAX_ACTION_TYPE)
    targets: list[Annotated[Text, Field(max_length=MAX_TARGET)]] = Field(
        min_length=1, max_length=MAX_PLAN_TARGETS
    )
    reason: Text = Field(max_length=MAX_REASON)
    instance: Text | None = Field(
        default=None, max_length=MAX_INSTANCE, description="The directory to act in ([providers.NAME])"
    )


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    action_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] = Field(
        default_factory=list, max_length=MAX_DECISION_IDS
    )
    batch_id: Text | None = Field(default=None, max_length=MAX_BATCH_ID)
    note: Text | None = Field(default=None, max_length=MAX_REASON)


@router.post("/playbooks/{name}/run", status_code=202, response_model=PlaybookRunView)
async def run_playbook(
    body: PlaybookRequest,
    request: Request,
    caller: CallerDep,
    name: Annotated[str, Path(max_length=MAX_PLAYBOOK_NAME, pattern=r"^[\w.-]+$")],
) -> PlaybookRunView:
    """Contain (or release) a person everywhere in one step; with dry_run, only the plan."""
    run = await runtime(request).playbooks.run(
        name, body.target, body.reason, caller,
        until=body.until, request_approval=body.request_approval, dry_run=body.dry_run,
        incident=body.incident,
    )  # fmt: skip
    return PlaybookRunView.model_validate(run)


@router.post("/actions/plan", response_model=list[PlanItemView])
async def plan(body: PlanRequest, request: Request, caller: CallerDep) -> list[PlanItemView]:
    """What an action on these targets would do now; nothing is written or changed."""
    items = await plan_actions(
        runtime(request).actions, body.type, body.targets, body.reason, caller, body.instance
    )
    return [PlanItemView.model_validate(i) for i in items]


@router.get("/approvals", response_model=list[ActionView])
async def pending_approvals(request: Request, caller: CallerDep) -> list[ActionView]:
    """Requests awaiting a second person."""
    return [ActionView.model_validate(a) for a in await runtime(request).approvals.pending(caller)]


@router.post("/approvals", response_model=list[ActionView])
async def decide(body: Decision, request: Request, caller: CallerDep) -> list[ActionView]:
    """Approve or reject waiting requests (never one's own)."""
    source = request.client.host if request.client else None
    decided = await runtime(request).approvals.decide(
        caller, body.approve, action_ids=body.action_ids, batch_id=body.batch_id, note=body.note,
        source=source,
    )  # fmt: skip
    return [ActionView.model_validate(a) for a in decided]


@router.get("/audit/verify", response_model=AuditReportView)
async def verify_audit(request: Request, caller: CallerDep) -> AuditReportView:
    """Walk the hash chain and name every edited, deleted or reordered entry."""
    require_permission(caller, SETTINGS_MANAGE, "verify the audit log")
    require_unscoped(caller, "verify the audit log")
    return AuditReportView.model_validate(await runtime(request).audit.verify())
