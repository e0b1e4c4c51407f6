"""User search, the user page and the user side panel (the same essentials, as a drawer fragment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from clampdown.api.auth import runtime
from clampdown.auth.principal import require_permission
from clampdown.catalog import get_action
from clampdown.errors import ClampdownError, InvalidInput, NotFound
from clampdown.limits import MAX_SEARCH_PAGES, MAX_TARGET
from clampdown.model import Action, ActionFilter, Containment
from clampdown.permissions import RESPONSE_READ
from clampdown.services.people import Person, find_person
from clampdown.services.people_search import PeopleSearch, search_people
from clampdown.services.playbooks import RELEASE
from clampdown.web.access import Viewer, viewer
from clampdown.web.person_events import recent_events
from clampdown.web.person_view import PersonView, person_view
from clampdown.web.templating import render, render_problem

router = APIRouter(include_in_schema=False)
ViewerDep = Annotated[Viewer, Depends(viewer)]
RECENT_ACTIONS = 15
SEARCH_PAGE_SIZE = 20


async def _recent_actions(request: Request, person: Person, who: Viewer) -> list[Action]:
    """This person's newest actions in the action center, over all their accounts."""
    service = runtime(request).actions
    found: dict[int, Action] = {}
    for linked in person.accounts:
        flt = ActionFilter(target=linked.account.id)
        for action in await service.list_actions(flt, who.principal, limit=RECENT_ACTIONS):
            found[action.id] = action
    return sorted(found.values(), key=lambda a: a.id, reverse=True)[:RECENT_ACTIONS]


async def load_person(
    request: Request, reference: str, who: Viewer, *, with_events: bool = False
) -> PersonView:
    """The person across every provider, with what this viewer may do to each account (and, for
    the user page, their recent events from the hunting store)."""
    require_permission(who.principal, RESPONSE_READ, "look up users")
    person = await find_person(runtime(request).connectors, reference, who.principal)
    events = await recent_events(request, person, who) if with_events else None
    return person_view(person, await _recent_actions(request, person, who), events)


@router.get("/users", response_class=HTMLResponse)
async def user_search(
    request: Request,
    who: ViewerDep,
    query: Annotated[str, Query(max_length=MAX_TARGET)] = "",
    page: Annotated[int, Query(ge=1, le=MAX_SEARCH_PAGES)] = 1,
) -> HTMLResponse:
    """Find people from a fragment of a name, login or email in every directory (ranked, paged;
    a slow directory is named as still answering), or one person by an exact id; results open in
    the side panel or on their page. The type-ahead (static/search.js) asks the API as one types."""
    found: PeopleSearch | None = None
    exact: list[PersonView] = []
    problem = None
    if query.strip():
        try:
            found = await search_people(
                runtime(request).connectors, query, who.principal, page=page, page_size=SEARCH_PAGE_SIZE
            )
        except InvalidInput as exc:  # not a fragment (a GUID's braces, DOMAIN\\name): maybe an exact id
            exact, problem = await _exact(request, query, who)
            problem = None if exact else (problem or exc.message)
        except ClampdownError as exc:
            problem = exc.message
        if found is not None and not found.people and found.complete:  # a SID or an object id
            exact, problem = await _exact(request, query, who)
    recent = await _recent_targets(request, who)
    return render(
        request, "users.html", who, query=query, found=found, exact=exact, problem=problem, recent=recent
    )


async def _exact(request: Request, query: str, who: Viewer) -> tuple[list[PersonView], str | None]:
    """The person an exact reference (id, SID, DOMAIN\\name) names, where no fragment found anyone;
    and what went wrong, if anything but not finding them."""
    try:
        return [await load_person(request, query, who)], None
    except NotFound:
        return [], None
    except ClampdownError as exc:
        return [], exc.message


async def _recent_targets(request: Request, who: Viewer) -> list[Action]:
    """People acted on lately, one line each, so the search page is also a list to work from."""
    if not who.may_read_actions:
        return []
    seen: dict[str, Action] = {}
    for action in await runtime(request).actions.list_actions(ActionFilter(), who.principal, limit=100):
        key = action.account.name if action.account else action.target
        seen.setdefault(key, action)
    return list(seen.values())[:10]


@router.get("/users/{reference}", response_class=HTMLResponse)
async def user_page(reference: str, request: Request, who: ViewerDep) -> HTMLResponse:
    """One person: every account's status, risk, sign-ins, groups, actions and their history."""
    try:
        person = await load_person(request, reference, who, with_events=True)
    except ClampdownError as exc:
        return render_problem(request, who, exc)
    return render(
        request, "user.html", who, person=person, playbooks=_playbooks(request, who),
        containments=await _open_containments(request, person, who),
    )  # fmt: skip


async def _open_containments(request: Request, person: PersonView, who: Viewer) -> list[Containment]:
    """The person's open containments, newest first (none: an empty list, not an error)."""
    account_ids = {a.account_id for a in person.accounts}
    if not account_ids:
        return []
    playbooks = runtime(request).playbooks
    try:
        found = await playbooks.open_containments(who.principal, account_ids)
    except NotFound:
        return []
    return [await playbooks.with_residual(c) for c in found]


@dataclass(frozen=True)
class PlaybookChoice:
    name: str
    title: str
    description: str


def _playbooks(request: Request, who: Viewer) -> list[PlaybookChoice]:
    """The configured playbooks whose every step the viewer may run, and the release."""
    found = []
    for name, playbook in runtime(request).settings.playbooks.items():
        if all(who.principal.may_run(get_action(step.action)) for step in playbook.steps):
            found.append(PlaybookChoice(name, f"Run playbook {name}", playbook.description))
    if found:
        found.append(PlaybookChoice(RELEASE, "Release", "Undo exactly what earlier containment changed."))
    return found


@router.get("/users/{reference}/panel", response_class=HTMLResponse)
async def user_panel(reference: str, request: Request, who: ViewerDep) -> HTMLResponse:
    """The side panel's content: the same essentials and actions, without leaving the list."""
    try:
        person = await load_person(request, reference, who)
    except ClampdownError as exc:
        return render_problem(request, who, exc, fragment=True)
    return render(request, "user_panel.html", who, person=person)
