"""Who is calling: an API token (Authorization: Bearer) or a console session cookie with CSRF."""

from __future__ import annotations

from fastapi import Request

from clampdown.auth.principal import Principal
from clampdown.services.runtime import Runtime

SESSION_COOKIE = "clampdown_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def client_address(request: Request) -> str | None:
    """Where a request came from, for throttling and the audit trail (the peer uvicorn reports,
    which honours X-Forwarded-For only from the proxies it trusts)."""
    return request.client.host if request.client else None


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def current_principal(request: Request) -> Principal:
    """The caller; Unauthenticated (401) without valid credentials."""
    auth = runtime(request).auth
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        return await auth.authenticate_token(token if scheme.lower() == "bearer" else None, "api")
    return await auth.authenticate_session(
        request.cookies.get(SESSION_COOKIE),
        request.headers.get(CSRF_HEADER),
        unsafe_method=request.method not in _SAFE_METHODS,
    )
