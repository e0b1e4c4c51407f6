"""/api/v1/containments: each containment of a person, its state and every action hanging off it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.auth.principal import Principal
from clampdown.limits import MAX_ID, MAX_PAGE, MAX_TARGET
from clampdown.model import ContainmentState
from clampdown.views import ContainmentView

router = APIRouter(prefix="/api/v1/containments", tags=["containments"], responses=ERRORS)
CallerDep = Annotated[Principal, Depends(current_principal)]


@router.get("", response_model=list[ContainmentView])
async def list_containments(
    request: Request,
    caller: CallerDep,
    state: Annotated[list[ContainmentState] | None, Query(description="Repeat for several")] = None,
    person: Annotated[str | None, Query(max_length=MAX_TARGET, description="Any name of the person")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[ContainmentView]:
    """Containments newest first: `state=active` lists who is contained now."""
    found = await runtime(request).playbooks.containments_of(caller, states=state, person=person, limit=limit)
    return [ContainmentView.model_validate(c) for c in found]


@router.get("/{containment_id}", response_model=ContainmentView)
async def get_containment(
    request: Request, caller: CallerDep, containment_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> ContainmentView:
    """One containment: its steps, timed releases, releases and undos; while it is open, also
    what its accounts may still use and until when (`residual`, read from the providers now)."""
    return ContainmentView.model_validate(
        await runtime(request).playbooks.containment(caller, containment_id, residual=True)
    )
