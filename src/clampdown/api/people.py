"""/api/v1/users: one person merged across AD, Entra ID and Okta."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from clampdown.api.actions import ERRORS
from clampdown.api.auth import current_principal, runtime
from clampdown.api.schemas import AccountOut
from clampdown.auth.principal import Principal, require_permission
from clampdown.limits import MAX_TARGET
from clampdown.permissions import RESPONSE_READ
from clampdown.services.people import Person, find_person

router = APIRouter(prefix="/api/v1/users", tags=["users"], responses=ERRORS)


class LinkedAccountOut(BaseModel):
    account: AccountOut
    state: dict[str, Any] | None
    state_error: str | None
    allowed_actions: list[str]


class PersonOut(BaseModel):
    reference: str
    accounts: list[LinkedAccountOut]
    unreachable: dict[str, str]

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        return cls(
            reference=person.reference,
            accounts=[
                LinkedAccountOut(
                    account=AccountOut(**la.account.to_json()),
                    state=la.state.to_json() if la.state else None,
                    state_error=la.state_error,
                    allowed_actions=[d.id for d in la.actions],
                )
                for la in person.accounts
            ],
            unreachable=person.unreachable,
        )


async def _person(request: Request, reference: str, caller: Principal) -> PersonOut:
    require_permission(caller, RESPONSE_READ, "look up users")
    return PersonOut.of(await find_person(runtime(request).connectors, reference, caller))


@router.get("", response_model=list[PersonOut])
async def search_users(
    request: Request,
    caller: Annotated[Principal, Depends(current_principal)],
    query: Annotated[str, Query(min_length=1, max_length=MAX_TARGET, description="Name, UPN, email or id")],
) -> list[PersonOut]:
    """The person a reference names, across every provider (an empty list if none)."""
    from clampdown.errors import NotFound

    try:
        return [await _person(request, query, caller)]
    except NotFound:
        return []


@router.get("/{reference}", response_model=PersonOut)
async def get_user(
    reference: str, request: Request, caller: Annotated[Principal, Depends(current_principal)]
) -> PersonOut:
    """One person: each account's state and the actions the caller may run on it."""
    return await _person(request, reference, caller)
