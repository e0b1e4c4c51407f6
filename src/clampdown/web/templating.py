"""The Jinja environment: templates shipped in the package, autoescaped, with the console's filters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from clampdown import catalog
from clampdown.api.errors import status_for
from clampdown.connectors.instances import directory_title
from clampdown.errors import ClampdownError
from clampdown.views.actions import incident_link, source_title
from clampdown.web.access import Viewer

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def provider_title(provider: str) -> str:
    """'ad' -> 'Active Directory'; an unknown provider keeps its name."""
    return directory_title(provider, long=True)


def directory_of(item: Any) -> str:
    """The directory an action runs in, or an account lives in, in words (a template filter)."""
    where = getattr(item, "instance", None) or getattr(item, "where", None)
    return directory_title(str(item.provider), where, long=True)


def when(value: datetime | str | None) -> str:
    """A time in UTC to the second, the way analysts compare it with logs."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def action_title(action_type: str) -> str:
    """'ad.disable_user' -> 'Disable user in Active Directory'."""
    return _TITLES.get(action_type, action_type)


_TITLES = {d.id: d.title for d in catalog.all_actions()}
templates.env.filters["provider_title"] = provider_title
templates.env.filters["directory"] = directory_of
templates.env.filters["action_title"] = action_title
templates.env.filters["when"] = when
templates.env.filters["source_title"] = source_title
templates.env.filters["incident_link"] = incident_link


# Only this origin's scripts and styles, and no framing: a hidden frame could trick a click on an
# action button (clickjacking), and an injected script could not run or send data elsewhere.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(
    request: Request, name: str, viewer: Viewer | None, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A page or fragment; every page knows its viewer (for the header and the CSRF meta tag)."""
    return templates.TemplateResponse(
        request, name, {"viewer": viewer, **context}, status_code=status_code, headers=SECURITY_HEADERS
    )


def render_problem(
    request: Request, viewer: Viewer, exc: ClampdownError, *, fragment: bool = False
) -> HTMLResponse:
    """An error as a page (or drawer content) with the status the API would answer."""
    name = "problem_fragment.html" if fragment else "problem.html"
    return render(request, name, viewer, status_code=status_for(exc), message=exc.message)
