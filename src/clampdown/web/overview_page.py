"""The overview, the console's home: the incident at a glance, each number linking to the
filtered action center (or containments list) that shows the same set."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clampdown.api.auth import runtime
from clampdown.errors import ClampdownError
from clampdown.services.overview import OverviewService
from clampdown.web.access import Viewer, viewer
from clampdown.web.templating import render, render_problem

router = APIRouter(include_in_schema=False)
ViewerDep = Annotated[Viewer, Depends(viewer)]


def duration(seconds: float | None) -> str:
    """Seconds in words an analyst reads at a glance: 42 s, 3 min 5 s, 2 h 10 min."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@router.get("/", response_class=HTMLResponse)
async def overview_page(request: Request, who: ViewerDep) -> Response:
    """Active containments, actions by status over the last day and week, time to contain,
    failures by reason, what rules did, and the directories' and jobs' health. Someone who may
    not read the action center starts at user search, the console's home before."""
    if not who.may_read_actions:
        return RedirectResponse("/users", status_code=303)
    try:
        found = await OverviewService(runtime(request)).overview(who.principal)
    except ClampdownError as exc:
        return render_problem(request, who, exc)
    return render(request, "overview.html", who, overview=found, duration=duration)
