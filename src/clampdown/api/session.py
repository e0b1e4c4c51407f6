"""/api/v1/session: console sign-in with a local password, sign-out, and who am I; /api/v1/me/tokens:
a person's own API token for the CLI (`clampdown login`), and revoking it (`clampdown logout`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from clampdown.api.actions import ERRORS
from clampdown.api.auth import SESSION_COOKIE, client_address, current_principal, runtime
from clampdown.api.schemas import Me, OwnToken, SealedOwnToken, SealedToken, SignIn
from clampdown.auth.principal import Principal
from clampdown.auth.service import Actor
from clampdown.errors import Forbidden
from clampdown.permissions import listed_scope
from clampdown.views.auth import IssuedTokenView

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


@router.post("/me/tokens", status_code=201, response_model=IssuedTokenView)
async def create_own_token(
    body: OwnToken, request: Request, caller: Annotated[Principal, Depends(current_principal)]
) -> IssuedTokenView:
    """A new API token of the signed-in person, shown once (`clampdown login` asks for it after a
    password sign-in). Only from a console session, with its CSRF token: never with another token,
    so no token can outlive itself. A single sign-on user's token works while they have a console
    session, as every token of theirs."""
    if caller.channel != "console":
        raise Forbidden(
            "a token is made from a signed-in console session (POST /api/v1/session), not with a token"
        )
    by = Actor(caller.username, "api", client_address(request))
    issued = await runtime(request).auth.create_token(
        caller.username, body.name, timedelta(days=body.expires_in_days), by=by
    )
    return IssuedTokenView.model_validate(issued)


@router.post("/me/tokens/sealed", status_code=201, response_model=SealedToken)
async def create_sealed_own_token(
    body: SealedOwnToken, request: Request, caller: Annotated[Principal, Depends(current_principal)]
) -> SealedToken:
    """As POST /me/tokens, the token sealed to the CLI's one-time public key (`clampdown login
    --browser`: the console page hands it to the CLI through a loopback redirect, where only the CLI
    that made the key can open it; the browser's history holds ciphertext only)."""
    from clampdown.sealing import CLI_LOGIN_CONTEXT, seal

    issued = await create_own_token(
        OwnToken(name=body.name, expires_in_days=body.expires_in_days), request, caller
    )
    return SealedToken(
        sealed=seal(body.public_key, issued.token, CLI_LOGIN_CONTEXT), expires_at=issued.expires_at
    )


@router.delete("/me/token", status_code=204)
async def revoke_own_token(
    request: Request, caller: Annotated[Principal, Depends(current_principal)]
) -> None:
    """Revoke the API token this request carries (`clampdown logout`); audited."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if caller.channel == "console" or scheme.lower() != "bearer":
        raise Forbidden("send the token to revoke as 'Authorization: Bearer <token>'")
    await runtime(request).auth.revoke_presented_token(
        token, by=Actor(caller.username, "api", client_address(request))
    )
