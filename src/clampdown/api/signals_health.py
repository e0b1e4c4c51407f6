"""GET /api/v1/ssf/health: the Shared Signals receivers and transmitter, their streams' health and
the last SETs received and sent (settings:manage)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.auth.principal import Principal
from clampdown.signals.health import LAST_SHOWN, SignalsHealthService
from clampdown.views import SignalsHealthView

router = APIRouter(prefix="/api/v1/ssf", tags=["shared signals"], responses=ERRORS)


@router.get("/health", response_model=SignalsHealthView)
async def signals_health(
    request: Request,
    caller: Annotated[Principal, Depends(current_principal)],
    limit: Annotated[int, Query(ge=1, le=200, description="SETs received and sent listed")] = LAST_SHOWN,
) -> SignalsHealthView:
    """Each receiver (accepted and refused over 24 hours, the last of each), the transmitter (its
    metadata address, published kids, each stream's outbox and health) and the last SETs received
    and sent. Needs settings:manage and access to every directory."""
    found = await SignalsHealthService(runtime(request)).health(caller, limit)
    return SignalsHealthView.model_validate(found)
