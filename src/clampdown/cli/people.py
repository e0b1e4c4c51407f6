"""`clampdown users search TEXT`: find directory people (not Clampdown's own users) from a fragment.

Light at import (the command's help must not load the services, the connectors or pydantic views):
everything heavy is imported when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from clampdown.cli import render
from clampdown.cli.actions import either
from clampdown.cli.context import (
    JsonOption,
    OutputOption,
    QuietOption,
    output_format,
)

if TYPE_CHECKING:
    from clampdown.auth.principal import Principal
    from clampdown.services.people_search import PeopleSearch
    from clampdown.services.runtime import Runtime
    from clampdown.views.people import PeopleSearchView


def users_search(
    text: Annotated[str, typer.Argument(help="A fragment of a name, login or email, e.g. mart.")],
    page: Annotated[int, typer.Option(min=1, help="Which page of people.")] = 1,
    page_size: Annotated[int, typer.Option(min=1, help="People per page (up to 50).")] = 10,
    wait: Annotated[
        float, typer.Option(min=0, max=10, help="Seconds each directory gets before it is 'still answering'.")
    ] = 2.0,
    as_json: JsonOption = False,
    output: OutputOption = None,
    quiet: QuietOption = False,
) -> None:
    """Search the directories' PEOPLE (AD, Entra ID, Okta) by a fragment, not Clampdown's users."""
    from clampdown.views.people import PeopleSearchView

    async def local(rt: Runtime, principal: Principal) -> PeopleSearch:
        from clampdown.services.people_search import search_people

        return await search_people(rt.connectors, text, principal, page=page, page_size=page_size, wait=wait)

    found = PeopleSearchView.model_validate(
        either(lambda api: api.search_people(text, page, page_size, wait), local)
    )
    shown = output_format(output, as_json)
    if shown == render.Output.JSON and not quiet:
        render.print_view(found)
    elif shown == render.Output.TABLE and not quiet:
        _print(found)
    else:  # one row per person: csv, yaml, or --quiet's references (what `act` and `contain` take)
        render.emit(_rows(found), shown, lambda: render.table(), quiet=quiet, key="reference")


def _rows(found: PeopleSearchView) -> list[dict[str, str]]:
    from clampdown.connectors.instances import directory_title

    rows = []
    for p in found.people:
        where = ", ".join(directory_title(f.account.provider, f.account.instance) for f in p.accounts)
        rows.append({"person": p.title, "reference": p.reference, "match": p.rank, "found_in": where})
    return rows


def _print(found: PeopleSearchView) -> None:
    table = render.table("person", "open with", "match", "found in")
    for row in _rows(found):
        table.add_row(*row.values())
    render.console.print(table)
    shown = f"{len(found.people)} of {found.total} people" + (" (more: --page)" if found.more else "")
    render.console.print(f"{shown} matching '{found.query}' in {', '.join(found.searched)}", highlight=False)
    if found.still_answering:
        render.errors.print(f"still answering: {', '.join(found.still_answering)}", highlight=False)
    for name, why in found.failed.items():
        render.errors.print(f"{name} did not answer: {why}", highlight=False, markup=False)
