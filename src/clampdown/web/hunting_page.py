"""The advanced hunting page: a KQL or SQL editor (completing the schema's tables and columns,
underlining errors), saved queries, results with a chart and row selection, and
"take action" on the selected accounts as one bulk batch (the browser calls the JSON API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from clampdown import catalog
from clampdown.api.hunting import hunting
from clampdown.connectors.instances import instances_of
from clampdown.errors import ClampdownError
from clampdown.permissions import HUNTING_MANAGE
from clampdown.views import EventTableView
from clampdown.views.base import views_json
from clampdown.web.access import Viewer, viewer
from clampdown.web.templating import provider_title, render, render_problem

router = APIRouter(include_in_schema=False)
ViewerDep = Annotated[Viewer, Depends(viewer)]
STARTER_QUERY = """CloudSignInEvents
| where ActionType == "LogonFailed"
| summarize Failures = count() by AccountUpn, Provider
| order by Failures desc"""


@dataclass(frozen=True)
class BulkChoice:
    """An action the viewer may take on the selected rows."""

    id: str
    title: str
    provider: str
    description: str
    warning: str | None

    @property
    def provider_title(self) -> str:
        return provider_title(self.provider)


@router.get("/hunting", response_class=HTMLResponse)
async def hunting_page(request: Request, who: ViewerDep) -> HTMLResponse:
    """The editor with saved queries and the event tables' columns; results come from the API."""
    service = hunting(request)
    try:
        saved = await service.saved(who.principal)
        tables = await service.schema(who.principal)
    except ClampdownError as exc:
        return render_problem(request, who, exc)
    seen = request.app.state.runtime.actions.directories(who.principal)
    choices = [
        BulkChoice(d.id, d.title, d.provider, d.description, d.warning)
        for d in catalog.all_actions()
        if who.principal.may_run(d) and instances_of(seen, d.provider)
    ]
    return render(
        request,
        "hunting.html",
        who,
        saved=saved,
        tables=tables,
        # For the editor's completion: the same tables, as GET /api/v1/hunting/schema returns them.
        schema_json=views_json([EventTableView.model_validate(t) for t in tables]),
        choices=choices,
        may_save=who.principal.has(HUNTING_MANAGE),
        starter=STARTER_QUERY,
    )
