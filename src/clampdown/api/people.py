"""/api/v1/users: one person merged across AD, Entra ID and Okta; people found from a fragment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.auth.principal import Principal, require_permission
from clampdown.limits import (
    MAX_SEARCH_PAGE,
    MAX_SEARCH_PAGES,
    MAX_SEARCH_TEXT,
    MAX_TARGET,
    MIN_SEARCH_TEXT,
    SEARCH_WAIT_SECONDS,
)
from clampdown.permissions import RESPONSE_READ
from clampdown.services.people import find_person
from clampdown.services.people_search import search_people
from clampdown.views import PersonView
from clampdown.views.people import PeopleSearchView

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


@router.get("/search", response_model=PeopleSearchView)
async def search_people_route(
    request: Request,
    caller: Annotated[Principal, Depends(current_principal)],
    query: Annotated[
        str,
        Query(
            min_length=MIN_SEARCH_TEXT,
            max_length=MAX_SEARCH_TEXT,
            description="A fragment of a name, login or email: letters, digits, spaces and . @ _ ' - +",
        ),
    ],
    page: Annotated[int, Query(ge=1, le=MAX_SEARCH_PAGES)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_SEARCH_PAGE)] = 10,
    wait: Annotated[
        float, Query(ge=0, le=10, description="Seconds each directory gets before it is 'still answering'")
    ] = SEARCH_WAIT_SECONDS,
) -> PeopleSearchView:
    """People whose name, login or email starts with or holds `query`, in every directory the caller
    may see, merged by strong anchors and ranked (exact, prefix, contains). A directory slower than
    `wait` is listed in `still_answering`; asking again shortly picks up its answer."""
    found = await search_people(
        runtime(request).connectors, query, caller, page=page, page_size=page_size, wait=wait
    )
    return PeopleSearchView.model_validate(found)


@router.get("/{reference}", response_model=PersonView)
async def get_user(
    reference: str, request: Request, caller: Annotated[Principal, Depends(current_principal)]
) -> PersonView:
    """One person: each account's state and the actions the caller may run on it."""
    return await _person(request, reference, caller)
