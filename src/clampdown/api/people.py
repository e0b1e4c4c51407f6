"""/api/v1/users: one person merged across AD, Entra ID and Okta."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.auth.principal import Principal, require_permission
from clampdown.limits import (
    MAX_TARGET,
)
from clampdown.permissions import RESPONSE_READ
from clampdown.services.people import find_person
from clampdown.views import PersonView

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=ERRORS)


async def _person(request: Request, reference: str, caller: Principal) -> PersonView:
    require_permission(caller, RESPONSE_READ, "look up users")
    return PersonView.model_validate(await find_person(runtime(request).connectors, reference, caller))


@router.get("", response_model=list[PersonView])
async def search_users(
    request: Request,
    caller: Annotated[Principal, Depends(current_principal)],
    query: Annotated[str, Query(min_length=1, max_length=MAX_TARGET, description="Name, UPN, email or id")],
) -> list[PersonView]:
    """The person a reference names, across every provider (an empty list if none)."""
    from clampdown.errors import NotFound

    try:
        return [await _person(request, query, caller)]
    except NotFound:
        return []


@router.get("/{reference}", response_model=PersonView)
async def get_user(
    reference: str, request: Request, caller: Annotated[Principal, Depends(current_principal)]
) -> PersonView:
    """One person: each account's state and the actions the caller may run on it."""
    return await _person(request, reference, caller)
