"""The Containments view: who is contained now (or ever), and each containment with every action
hanging off it, read through the playbook service like the action center reads actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse

from clampdown.api.auth import runtime
from clampdown.auth.principal import Principal
from clampdown.catalog import get_action
from clampdown.errors import ClampdownError
from clampdown.limits import MAX_ID, MAX_TARGET
from clampdown.model import Action, Containment, ContainmentState, StepRole
from clampdown.web.access import Viewer, viewer
from clampdown.web.templating import render, render_problem

router = APIRouter(include_in_schema=False)
ViewerDep = Annotated[Viewer, Depends(viewer)]
PAGE_SIZE = 100
ACTIVE = (ContainmentState.ACTIVE, ContainmentState.PARTLY_CONTAINED)
OPEN = tuple(s for s in ContainmentState if s.is_open)
ONE_BY_ONE = [s for s in ContainmentState if s is not ContainmentState.ACTIVE]  # "active" is a group
# The state filter's choices: groups first, then each state alone.
STATE_CHOICES: dict[str, tuple[str, tuple[ContainmentState, ...]]] = {
    "active": ("Active (partly contained too)", ACTIVE),
    "open": ("Open (awaiting approval too)", OPEN),
    "all": ("All", ()),
    **{s.value: (s.value.replace("_", " "), (s,)) for s in ONE_BY_ONE},
}
ROLE_TITLES = {StepRole.STEP: "Steps", StepRole.TIMER: "Timed release", StepRole.RELEASE: "Release",
               StepRole.UNDO: "Undo"}  # fmt: skip


@dataclass(frozen=True)
class Filters:
    """The list's filters, as the query string carries them."""

    state: str = "active"
    person: str = ""

    def query(self, **changes: object) -> str:
        values = {**self.__dict__, **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _filters(
    state: Annotated[str, Query(max_length=32)] = "active",
    person: Annotated[str, Query(max_length=MAX_TARGET)] = "",
) -> Filters:
    return Filters(state if state in STATE_CHOICES else "active", person.strip())


FiltersDep = Annotated[Filters, Depends(_filters)]


@dataclass(frozen=True)
class RoleGroup:
    """The actions of one role (steps, timed releases, releases, undos), in id order."""

    role: StepRole
    title: str
    actions: list[Action]


@dataclass(frozen=True)
class ContainmentDetail:
    containment: Containment
    groups: list[RoleGroup]
    may_release: bool

    @property
    def settled(self) -> bool:
        """Nothing left to change on the page: every action final and no approval awaited."""
        waiting = self.containment.effective_state is ContainmentState.AWAITING_APPROVAL
        return not waiting and all(a.status.is_final for a in self.containment.actions)


def outcome(action: Action) -> str:
    """What the action did, in the words the action center uses."""
    if action.error_code:
        return f"{action.error_code}: {action.error_message or ''}".rstrip(": ")
    if action.result:
        return str(action.result.get("message") or "")
    return ""


def _may_release(containment: Containment, principal: Principal) -> bool:
    """Offer the release to whoever may run the inverse of every step that has one (steps such as
    revoking sessions have none and are left as they are); the service checks again."""
    if not containment.effective_state.is_open:
        return False
    inverses = [i for i in (get_action(s.type).inverse for s in containment.steps) if i is not None]
    return bool(inverses) and all(principal.may_run(get_action(i)) for i in inverses)


def _detail(containment: Containment, principal: Principal) -> ContainmentDetail:
    groups = []
    for role, title in ROLE_TITLES.items():
        actions = [a for a in containment.actions if a.containment_role == role]
        if actions:
            groups.append(RoleGroup(role, title, actions))
    return ContainmentDetail(containment, groups, _may_release(containment, principal))


@router.get("/containments", response_class=HTMLResponse)
async def containments_page(request: Request, who: ViewerDep, filters: FiltersDep) -> HTMLResponse:
    """Containments newest first, active ones by default; each opens its page."""
    states = list(STATE_CHOICES[filters.state][1]) or None
    try:
        found = await runtime(request).playbooks.containments_of(
            who.principal, states=states, person=filters.person or None, limit=PAGE_SIZE
        )
    except ClampdownError as exc:
        return render_problem(request, who, exc)
    return render(
        request, "containments.html", who, containments=found, filters=filters,
        choices={k: title for k, (title, _) in STATE_CHOICES.items()}, page_size=PAGE_SIZE,
    )  # fmt: skip


async def _load(
    request: Request, who: Viewer, containment_id: int, *, residual: bool = False
) -> ContainmentDetail:
    found = await runtime(request).playbooks.containment(who.principal, containment_id, residual=residual)
    return _detail(found, who.principal)


@router.get("/containments/{containment_id}", response_class=HTMLResponse)
async def containment_page(
    request: Request, who: ViewerDep, containment_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> HTMLResponse:
    """One containment: its accounts, notes, how it ended, its actions by role and, while it is
    open, what its accounts may still use (read once per page; the polled panel does not)."""
    try:
        detail = await _load(request, who, containment_id, residual=True)
    except ClampdownError as exc:
        return render_problem(request, who, exc)
    return render(request, "containment.html", who, detail=detail, outcome=outcome)


@router.get("/containments/{containment_id}/panel", response_class=HTMLResponse)
async def containment_panel(
    request: Request, who: ViewerDep, containment_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> HTMLResponse:
    """The same detail as a fragment: the drawer's content, and what the page polls."""
    try:
        detail = await _load(request, who, containment_id)
    except ClampdownError as exc:
        return render_problem(request, who, exc, fragment=True)
    return render(request, "containment_panel.html", who, detail=detail, outcome=outcome)
