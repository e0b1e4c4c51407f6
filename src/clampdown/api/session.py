"""/api/v1/session: console sign-in with a local password, sign-out, and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from clampdown.api.actions import ERRORS
from clampdown.api.auth import SESSION_COOKIE, client_address, current_principal, runtime
from clampdown.api.schemas import Me, SignIn
from clampdown.auth.principal import Principal
from clampdown.permissions import listed_scope

_THROTTLED: dict[int | str, dict[str, object]] = {
    429: {"description": "Too many failed sign-ins: wait for Retry-After seconds"}
}
router = APIRouter(prefix="/api/v1", tags=["session"], responses=ERRORS)


def secure_cookies(request: Request) -> bool:
    # Secure cookies need HTTPS; plain http on loopback (the lab) would otherwise never sign in.
    return request.url.scheme == "https" or request.url.hostname not in ("127.0.0.1", "localhost", "::1")


@router.post("/session", response_model=Me, responses=_THROTTLED)
async def sign_in(body: SignIn, request: Request, response: Response) -> Me:
    """Check a local password; sets an HttpOnly, SameSite=Strict session cookie. Send the returned
    csrf_token as X-CSRF-Token with every POST made with the cookie. After repeated failures for
    the account or from the address, 429 with Retry-After: no password is checked until then."""
    auth = runtime(request).auth
    user, session = await auth.sign_in(body.username, body.password, client_address(request))
    response.set_cookie(
        SESSION_COOKIE,
        session.session_id,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        expires=session.expires_at,
        path="/",
    )
    principal = await auth.principal_for(user, "console")
    return Me(
        username=principal.username,
        roles=sorted(principal.roles),
        permissions=sorted(principal.permissions),
        channel="console",
        directories=listed_scope(principal.scope),
        csrf_token=session.csrf_token,
    )


@router.delete("/session", status_code=204)
async def sign_out(request: Request, response: Response) -> None:
    """End the console session."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await runtime(request).auth.sign_out(session_id)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=Me)
async def me(request: Request, caller: Annotated[Principal, Depends(current_principal)]) -> Me:
    """The caller, their roles and effective permissions."""
    csrf = None
    session_id = request.cookies.get(SESSION_COOKIE)
    if caller.channel == "console" and session_id:
        csrf = await runtime(request).auth.csrf_for(session_id)
    return Me(
        username=caller.username,
        roles=sorted(caller.roles),
        permissions=sorted(caller.permissions),
        channel=caller.channel,
        directories=listed_scope(caller.scope),
        csrf_token=csrf,
    )
