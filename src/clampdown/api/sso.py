"""/auth/oidc: single sign-on with Entra ID or Okta (OpenID Connect, code flow with PKCE)."""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from clampdown.api.actions import ERRORS
from clampdown.api.auth import SESSION_COOKIE, client_address, runtime
from clampdown.api.session import secure_cookies
from clampdown.auth.oidc import PENDING_LIFETIME, OidcClient
from clampdown.auth.principal import PermissionDenied, Principal
from clampdown.auth.redirects import DEFAULT_LANDING
from clampdown.auth.service import Unauthenticated
from clampdown.auth.sso_access import SsoAccess, refusal_of
from clampdown.errors import NotFound
from clampdown.limits import MAX_NEXT_URL

REDIRECT: dict[int | str, dict[str, object]] = {302: {"description": "Redirect to the next step of sign-in"}}
router = APIRouter(prefix="/auth/oidc", tags=["session"], responses={**ERRORS, **REDIRECT})
PENDING_COOKIE = "clampdown_sso"
# The session cookie is SameSite=Strict, and browsers count every hop of a navigation that the
# identity provider's site started as cross-site: a 302 to "/" would arrive without the new cookie
# and land on the sign-in page. This page moves on by itself, from this site, so the cookie goes.
# `next` is a same-site path (auth.redirects checked it when the sign-in started), escaped.
_SIGNED_IN_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta http-equiv="refresh" content="0;url={next}"><title>Signed in</title></head>'
    '<body><main><p><a href="{next}">Continue to Clampdown</a></p></main></body></html>'
)


def _client(request: Request) -> OidcClient:
    client: OidcClient | None = getattr(request.app.state, "oidc", None)
    if client is None:
        raise NotFound("single sign-on is not configured ([sso] in the config)")
    return client


@router.get("/login", status_code=302, response_class=RedirectResponse)
async def sso_login(
    request: Request, next: Annotated[str, Query(max_length=MAX_NEXT_URL)] = DEFAULT_LANDING
) -> RedirectResponse:
    """Send the browser to the identity provider; back signed in, it goes on to `next` if that
    is a path on this site."""
    url, pending = await _client(request).start(next)
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        PENDING_COOKIE, pending, max_age=PENDING_LIFETIME, httponly=True, samesite="lax",
        secure=secure_cookies(request), path="/auth/oidc",
    )  # fmt: skip
    return response


@router.get(
    "/callback",
    # Errors are JSON as everywhere; only the signed-in page is HTML.
    responses={200: {"description": "Signed in: a page that goes on to /", "content": {"text/html": {}}}},
)
async def sso_callback(request: Request, code: str | None = None, state: str | None = None) -> HTMLResponse:
    """Finish the sign-in: check the ID token, map groups to roles, open a console session, then
    a page that goes on to "/" by itself."""
    client = _client(request)
    auth = runtime(request).auth
    access = SsoAccess(auth, client)
    source = client_address(request)
    try:
        done = await client.finish(code, state, request.cookies.get(PENDING_COOKIE))
    except Unauthenticated as exc:
        await access.failed(exc.message, source)
        raise
    identity = done.identity
    refusal = refusal_of(identity)
    if refusal is not None:
        denied = Principal(identity.username, frozenset(), frozenset(), "console")
        missing = (
            "a group mapped to a Clampdown role" if not identity.roles else "a group mapped to a directory"
        )
        await auth.record_denial(denied, "sign-in", None, missing)
        await access.failed(refusal, source, identity.username)
        raise PermissionDenied(f"{identity.username} may not sign in to Clampdown: {refusal}", missing)
    user = await access.signed_in(identity, source)
    sealed = client.seal(done.refresh_token) if done.refresh_token else None
    session = await auth.open_session(user, sealed)
    page = _SIGNED_IN_PAGE.format(next=escape(done.next_url, quote=True))
    response = HTMLResponse(page, headers={"Cache-Control": "no-store"})
    response.delete_cookie(PENDING_COOKIE, path="/auth/oidc")
    response.set_cookie(
        SESSION_COOKIE, session.session_id, httponly=True, samesite="strict",
        secure=secure_cookies(request), expires=session.expires_at, path="/",
    )  # fmt: skip
    return response
