"""Settings, Shared Signals: the transmitters Clampdown receives from, its own transmitter and its
streams' health, and the last SETs received and sent (settings:manage)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from clampdown.api.auth import runtime
from clampdown.errors import ClampdownError
from clampdown.signals.health import SignalsHealthService
from clampdown.views import SignalsHealthView
from clampdown.web.access import Viewer, viewer
from clampdown.web.templating import render, render_problem

router = APIRouter(include_in_schema=False)
ViewerDep = Annotated[Viewer, Depends(viewer)]

# A stream's health as a badge: the word is always shown, the colour only repeats it.
BADGES = {"ok": "ok", "failing": "bad", "backlog": "warn", "paused": "warn", "disabled": "info"}


def event_name(uri: str) -> str:
    """'https://schemas.openid.net/secevent/risc/event-type/account-disabled' -> 'account-disabled'."""
    return uri.rstrip("/").rsplit("/", 1)[-1]


@router.get("/settings/signals", response_class=HTMLResponse)
async def signals_page(request: Request, who: ViewerDep) -> HTMLResponse:
    """Receivers, the transmitter with its streams' health, and the last SETs received and sent."""
    try:
        found = await SignalsHealthService(runtime(request)).health(who.principal)
    except ClampdownError as exc:
        return render_problem(request, who, exc)
    return render(request, "signals.html", who, signals=SignalsHealthView.model_validate(found),
                  badges=BADGES, event_name=event_name)  # fmt: skip
