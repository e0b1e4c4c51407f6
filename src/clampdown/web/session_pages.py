"""The sign-in page. The console's front door, /, is the overview (web/overview_page.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from clampdown.auth.redirects import DEFAULT_LANDING, safe_next
from clampdown.limits import MAX_NEXT_URL
from clampdown.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
async def sign_in_page(
    request: Request, next: Annotated[str, Query(max_length=MAX_NEXT_URL)] = DEFAULT_LANDING
) -> HTMLResponse:
    """Local account sign-in (the form posts to /api/v1/session, which sets the session cookie), and
    single sign-on when it is configured."""
    sso_enabled = getattr(request.app.state, "oidc", None) is not None
    return render(request, "login.html", None, next_url=safe_next(next), sso_enabled=sso_enabled)
