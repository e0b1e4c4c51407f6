"""The action center: Pending and History tabs, filters, batches with progress, the detail drawer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from clampdown import catalog
from clampdown.api.auth import runtime
from clampdown.auth.principal import Principal
from clampdown.catalog import get_action
from clampdown.errors import ClampdownError
from clampdown.limits import (
    MAX_ACTION_TYPE,
    MAX_BATCH_ID,
    MAX_ERROR_CODE,
    MAX_ID,
    MAX_INCIDENT,
    MAX_PROVIDER,
    MAX_TARGET,
    MAX_USERNAME,
)
from clampdown.model import Action, ActionFilter, ActionSource, ActionStatus
from clampdown.services.actions import undo_refusal
from clampdown.web.access import Viewer, viewer
from clampdown.web.templating import provider_title, render, render_problem

router = APIRouter(include_in_schema=False)
ViewerDep = Annotated[Viewer, Depends(viewer)]
PAGE_SIZE = 100
PENDING = (ActionStatus.AWAITING_APPROVAL, ActionStatus.QUEUED, ActionStatus.RUNNING)
HISTORY = (ActionStatus.COMPLETED, ActionStatus.FAILED, ActionStatus.CANCELLED)
SOURCES = [s.value for s in ActionSource]
PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}  # fmt: skip


@dataclass(frozen=True)
class Filters:
    """The action center's filters, as the query string carries them."""

    tab: str = "pending"
    status: str = ""
    type: str = ""
    provider: str = ""
    requested_by: str = ""
    target: str = ""
    batch: str = ""
    since: str = ""
    before: int | None = None
    source: str = ""
    incident: str = ""
    error_code: str = ""

    def query(self, **changes: object) -> str:
        """This filter set as a query string, with some fields changed (empty ones left out)."""
        values = {**self.__dict__, **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})

    def export_query(self) -> str:
        """The same filters for /api/v1/actions/export."""
        flt = {"type": self.type, "provider": self.provider, "requested_by": self.requested_by,
               "target": self.target, "batch": self.batch, "source": self.source, "incident": self.incident,
               "error_code": self.error_code}  # fmt: skip
        pairs = [(k, v) for k, v in flt.items() if v]
        pairs += [("status", s.value) for s in self.statuses()]
        return urlencode([("format", "csv"), *pairs])

    def statuses(self) -> tuple[ActionStatus, ...]:
        """The statuses listed: the tab's, or the one chosen; the All tab: any (empty)."""
        in_tab = {"pending": PENDING, "history": HISTORY}.get(self.tab, tuple(ActionStatus))
        if self.tab == "all" and self.status not in {s.value for s in in_tab}:
            return ()
        if self.status in {s.value for s in in_tab}:
            return (ActionStatus(self.status),)
        return in_tab

    def to_store(self, now: datetime) -> ActionFilter:
        """The store's filter; `since` (a period such as 24h) counts back from `now`."""
        return ActionFilter(
            statuses=self.statuses(),
            type=self.type or None,
            provider=self.provider or None,
            target=self.target or None,
            requested_by=self.requested_by or None,
            batch_id=self.batch or None,
            since=now - PERIODS[self.since] if self.since else None,
            source=ActionSource(self.source) if self.source else None,
            incident=self.incident or None,
            error_code=self.error_code or None,
        )


def _filters(
    tab: Annotated[str, Query(pattern="^(pending|history|all)$")] = "pending",
    status: Annotated[str, Query(max_length=32)] = "",  # awaiting_approval is 17
    type: Annotated[str, Query(max_length=MAX_ACTION_TYPE)] = "",
    provider: Annotated[str, Query(max_length=MAX_PROVIDER)] = "",
    requested_by: Annotated[str, Query(max_length=MAX_USERNAME)] = "",
    target: Annotated[str, Query(max_length=MAX_TARGET)] = "",
    batch: Annotated[str, Query(max_length=MAX_BATCH_ID)] = "",
    since: Annotated[str, Query(max_length=8)] = "",
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    source: Annotated[str, Query(max_length=32)] = "",
    incident: Annotated[str, Query(max_length=MAX_INCIDENT)] = "",
    error_code: Annotated[str, Query(max_length=MAX_ERROR_CODE)] = "",
) -> Filters:
    if type and type not in {d.id for d in catalog.all_actions()}:
        type = ""
    return Filters(
        tab, status, type, provider, requested_by, target, batch, since if since in PERIODS else "", before,
        source=source if source in SOURCES else "", incident=incident.strip(), error_code=error_code.strip(),
    )  # fmt: skip


FiltersDep = Annotated[Filters, Depends(_filters)]


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    title: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(n for s, n in self.counts.items() if ActionStatus(s).is_final)

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


@dataclass(frozen=True)
class ActionRow:
    action: Action
    title: str
    may_undo: bool
    may_cancel: bool
    may_decide: bool  # approve or reject: a second person with the right to run it


def _row(action: Action, principal: Principal) -> ActionRow:
    definition = get_action(action.type)
    may_run = principal.may_run(definition)
    inverse = get_action(definition.inverse) if definition.inverse else None
    may_undo = inverse is not None and may_run and principal.may_run(inverse) and undo_refusal(action) is None
    waiting = action.status is ActionStatus.AWAITING_APPROVAL
    may_decide = may_run and waiting and action.requested_by != principal.username
    running = action.status is ActionStatus.RUNNING and not action.cancel_requested_by
    may_cancel = may_run and (action.status is ActionStatus.QUEUED or running)
    return ActionRow(action, definition.title, may_undo, may_cancel, may_decide)


@dataclass(frozen=True)
class Listing:
    """What the live part of the page shows."""

    filters: Filters
    rows: list[ActionRow]
    batches: list[BatchProgress]
    pending_count: int
    older: int | None
    no_worker: str | None = None  # queued actions and no live worker to take them: say so


async def _listing(request: Request, who: Viewer, filters: Filters) -> Listing:
    rt = runtime(request)
    flt = filters.to_store(rt.actions.clock.now())
    found = await rt.actions.list_actions(flt, who.principal, limit=PAGE_SIZE, before_id=filters.before)
    batches = []
    shown = list(dict.fromkeys(a.batch_id for a in found if a.batch_id))[:5]  # each costs a count
    for batch_id in shown:
        counts = await rt.actions.count_by_status(ActionFilter(batch_id=batch_id), who.principal)
        title = next(get_action(a.type).title for a in found if a.batch_id == batch_id)
        batches.append(BatchProgress(batch_id, title, {s.value: n for s, n in counts.items()}))
    pending = await rt.actions.count_by_status(ActionFilter(statuses=PENDING), who.principal)
    queued = pending.get(ActionStatus.QUEUED, 0)
    no_worker = await rt.workers.no_worker_warning() if queued else None
    return Listing(
        filters=filters,
        rows=[_row(a, who.principal) for a in found],
        batches=batches,
        pending_count=sum(pending.values()),
        older=found[-1].id if len(found) == PAGE_SIZE else None,
        no_worker=f"{queued} queued: {no_worker}." if no_worker else None,
    )


@router.get("/actions", response_class=HTMLResponse)
async def action_center_page(request: Request, who: ViewerDep, filters: FiltersDep) -> HTMLResponse:
    """The whole page; its table refreshes itself from /actions/rows."""
    try:
        listing = await _listing(request, who, filters)
    except ClampdownError as exc:
        return render_problem(request, who, exc)
    return render(
        request,
        "actions.html",
        who,
        listing=listing,
        filters=filters,
        pending_statuses=[s.value for s in PENDING],
        history_statuses=[s.value for s in HISTORY],
        all_statuses=[s.value for s in ActionStatus],
        action_types=list(catalog.all_actions()),
        providers={kind: provider_title(kind) for kind in ("ad", "entra", "okta")},
        periods=list(PERIODS),
        sources=SOURCES,
    )


@router.get("/actions/rows", response_class=HTMLResponse)
async def action_rows(request: Request, who: ViewerDep, filters: FiltersDep) -> HTMLResponse:
    """The live part of the page (batches and rows), polled by the page script."""
    try:
        listing = await _listing(request, who, filters)
    except ClampdownError as exc:
        return render_problem(request, who, exc, fragment=True)
    return render(request, "action_rows.html", who, listing=listing, filters=filters)


@router.get("/actions/{action_id}/panel", response_class=HTMLResponse)
async def action_panel(
    request: Request, who: ViewerDep, action_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> HTMLResponse:
    """The detail drawer: every field of the action, its attempts and errors, undo or cancel."""
    rt = runtime(request)
    try:
        action = await rt.actions.get(action_id, who.principal)
        undo = await rt.actions.find_undo(action_id, who.principal)
    except ClampdownError as exc:
        return render_problem(request, who, exc, fragment=True)
    definition = get_action(action.type)
    return render(
        request, "action_panel.html", who, row=_row(action, who.principal), definition=definition,
        undo=undo,
    )  # fmt: skip
