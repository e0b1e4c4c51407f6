"""`clampdown users search TEXT`: find directory people (not Clampdown's own users) from a fragment.

Light at import (the command's help must not load the services, the connectors or pydantic views):
everything heavy is imported when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from clampdown.cli import render
from clampdown.cli.context import JsonOption, caller, load, open_runtime
from clampdown.cli.errors import run

if TYPE_CHECKING:
    from clampdown.services.people_search import PeopleSearch


def users_search(
    text: Annotated[str, typer.Argument(help="A fragment of a name, login or email, e.g. mart.")],
    page: Annotated[int, typer.Option(min=1, help="Which page of people.")] = 1,
    page_size: Annotated[int, typer.Option(min=1, help="People per page (up to 50).")] = 10,
    wait: Annotated[
        float, typer.Option(min=0, max=10, help="Seconds each directory gets before it is 'still answering'.")
    ] = 2.0,
    as_json: JsonOption = False,
) -> None:
    """Search the directories' PEOPLE (AD, Entra ID, Okta) by a fragment, not Clampdown's users."""
    settings = load()

    async def go() -> PeopleSearch:
        from clampdown.services.people_search import search_people

        async with open_runtime(settings) as rt:
            return await search_people(
                rt.connectors, text, await caller(rt), page=page, page_size=page_size, wait=wait
            )

    found = run(go())
    if as_json:
        from clampdown.views.people import PeopleSearchView

        render.print_view(PeopleSearchView.model_validate(found))
        return
    _print(found)


def _print(found: PeopleSearch) -> None:
    from rich.table import Table

    from clampdown.connectors.instances import directory_title

    table = Table(show_lines=False)
    for column in ("person", "open with", "match", "found in"):
        table.add_column(column)
    for person in found.people:
        accounts = ", ".join(directory_title(f.account.provider, f.account.instance) for f in person.accounts)
        table.add_row(person.title, person.reference, person.rank.word, accounts)
    render.console.print(table)
    shown = f"{len(found.people)} of {found.total} people" + (" (more: --page)" if found.more else "")
    render.console.print(f"{shown} matching '{found.query}' in {', '.join(found.searched)}", highlight=False)
    if found.still_answering:
        render.errors.print(f"still answering: {', '.join(found.still_answering)}", highlight=False)
    for name, why in found.failed.items():
        render.errors.print(f"{name} did not answer: {why}", highlight=False, markup=False)
