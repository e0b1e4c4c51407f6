"""How the CLI shows actions and the catalog: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from clampdown.catalog import ActionDefinition

if TYPE_CHECKING:  # the views (pydantic) are imported by the commands that print them
    from clampdown.model import Action
    from clampdown.views.actions import ActionView
    from clampdown.views.base import View

console = Console()
errors = Console(stderr=True)


def print_json(data: Any) -> None:
    """JSON for what has no view (the catalog, ingestion reports)."""
    print(json.dumps(data, indent=2, default=str))


def print_view(shown: View | Sequence[View]) -> None:
    """A view, or a list of views, exactly as the API's twin route returns it."""
    from clampdown.views.base import View, views_json

    print(shown.model_dump_json(indent=2) if isinstance(shown, View) else views_json(shown, indent=2))


def summary(action: Action | ActionView) -> str:
    """One line a person reads: what happened to whom (the same from an action or its API view)."""
    who = action.account.name if action.account else action.target
    line = f"action {action.id}: {action.type} on {who}: {action.status!s}"
    if action.result and action.result.get("message"):
        line += f": {action.result['message']}"
    if action.error_message:
        line += f": {action.error_message}"
    return line


def actions_table(actions: Sequence[Action | ActionView]) -> Table:
    table = Table(show_lines=False)
    for column in ("id", "type", "target", "status", "requested by", "requested at", "outcome"):
        table.add_column(column)
    for a in actions:
        outcome = a.error_message or (a.result or {}).get("message") or ""
        table.add_row(
            str(a.id),
            a.type,
            a.account.name if a.account else a.target,
            str(a.status),
            a.requested_by,
            a.requested_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(outcome),
        )
    return table


def action_detail(action: Action | ActionView) -> Table:
    from clampdown.views.actions import ActionView

    table = Table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in ActionView.model_validate(action).model_dump(mode="json").items():
        if value in (None, [], {}):
            continue
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    return table


def catalog_table(definitions: Sequence[ActionDefinition | Mapping[str, Any]]) -> Table:
    """The catalog, from its definitions or from their JSON (`to_json`, the API's /catalog)."""
    table = Table()
    for column in ("id", "title", "inverse", "who may run it"):
        table.add_column(column)
    for entry in definitions:
        d: Mapping[str, Any] = entry.to_json() if isinstance(entry, ActionDefinition) else entry
        who = ", ".join(sorted({*d["roles"], *d["permissions"]}))
        inverse = d["inverse"] or ("-" if d["reversible"] else "irreversible")
        table.add_row(str(d["id"]), str(d["title"]), str(inverse), who)
    return table


def rows_table(rows: list[dict[str, object]]) -> Table:
    """A table of flat rows, columns in the first row's order."""
    table = Table()
    for column in rows[0] if rows else ():
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    return table
