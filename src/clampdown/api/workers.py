"""/api/v1/workers: the registered workers, whether each is live, and what each holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.auth.principal import Principal
from clampdown.views import WorkerView

router = APIRouter(prefix="/api/v1/workers", tags=["workers"], responses=ERRORS)


@router.get("", response_model=list[WorkerView])
async def list_workers(
    request: Request, caller: Annotated[Principal, Depends(current_principal)]
) -> list[WorkerView]:
    """Every registered worker, live ones first (needs response:read); a dead one is kept a day."""
    found = await runtime(request).workers.list_workers(caller)
    return [WorkerView.model_validate(w) for w in found]
