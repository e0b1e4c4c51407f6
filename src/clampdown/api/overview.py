"""/api/v1/overview: the incident at a glance, each number with its filtered action center."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.auth.principal import Principal
from clampdown.services.overview import OverviewService
from clampdown.views.overview import OverviewView

router = APIRouter(prefix="/api/v1", tags=["overview"], responses=ERRORS)
CallerDep = Annotated[Principal, Depends(current_principal)]


@router.get("/overview", response_model=OverviewView)
async def get_overview(
    request: Request,
    caller: CallerDep,
    health: Annotated[bool, Query(description="Ask each directory now (at most 5 s)")] = True,
) -> OverviewView:
    """Active containments, actions by status over the last day and week, time to contain (median,
    p95), failures by reason, what detection rules did and the directories' and jobs' health."""
    found = await OverviewService(runtime(request)).overview(caller, health=health)
    return OverviewView.model_validate(found)
