"""How the CLI shows actions and the catalog: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from clampdown.catalog import ActionDefinition
from clampdown.model import Action
from clampdown.views import ActionView, View
from clampdown.views.base import views_json

console = Console()
errors = Console(stderr=True)


def print_json(data: Any) -> None:
    """JSON for what has no view (the catalog, ingestion reports)."""
    print(json.dumps(data, indent=2, default=str))


def print_view(shown: View | Sequence[View]) -> None:
    """A view, or a list of views, exactly as the API's twin route returns it."""
    print(shown.model_dump_json(indent=2) if isinstance(shown, View) else views_json(shown, indent=2))


def summary(action: Action) -> str:
    """One line a person reads: what happened to whom."""
    who = action.account.name if action.account else action.target
    line = f"action {action.id}: {action.type} on {who}: {action.status.value}"
    if action.result and action.result.get("message"):
        line += f": {action.result['message']}"
    if action.error_message:
        line += f": {action.error_message}"
    return line


def actions_table(actions: list[Action]) -> Table:
    table = Table(show_lines=False)
    for column in ("id", "type", "target", "status", "requested by", "requested at", "outcome"):
        table.add_column(column)
    for a in actions:
        outcome = a.error_message or (a.result or {}).get("message") or ""
        table.add_row(
            str(a.id),
            a.type,
            a.account.name if a.account else a.target,
            a.status.value,
            a.requested_by,
            a.requested_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(outcome),
        )
    return table


def action_detail(action: Action) -> Table:
    table = Table(show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in ActionView.model_validate(action).model_dump(mode="json").items():
        if value in (None, [], {}):
            continue
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    return table


def catalog_table(definitions: list[ActionDefinition]) -> Table:
    table = Table()
    for column in ("id", "title", "inverse", "who may run it"):
        table.add_column(column)
    for d in definitions:
        who = ", ".join(sorted(d.roles | d.permissions))
        table.add_row(d.id, d.title, d.inverse or ("-" if d.reversible else "irreversible"), who)
    return table


def rows_table(rows: list[dict[str, object]]) -> Table:
    """A table of flat rows, columns in the first row's order."""
    table = Table()
    for column in rows[0] if rows else ():
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    return table
