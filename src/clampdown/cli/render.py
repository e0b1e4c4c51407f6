"""How the CLI shows what it lists: tables for people (as wide as the terminal, long values wrapped,
never cut), JSON, CSV or YAML for scripts (`--output`), or only the ids (`--quiet`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.table import Table

from clampdown.catalog import ActionDefinition

if TYPE_CHECKING:  # the views (pydantic) are imported by the commands that print them
    from clampdown.model import Action
    from clampdown.views.actions import ActionView
    from clampdown.views.base import View

console = Console()
errors = Console(stderr=True)


class Output(StrEnum):
    """What a listing prints: `--output table|json|csv|yaml`."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"
    YAML = "yaml"


def table(*columns: str, show_header: bool = True) -> Table:
    """A table whose long values (ids, UPNs, action types) wrap onto more lines instead of being cut."""
    shown = Table(show_header=show_header, show_lines=False)
    for column in columns:
        shown.add_column(column, overflow="fold")
    return shown


def _records(items: Sequence[View] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    # Views dump themselves (no import of the views here: the catalog's listing stays light); rows
    # of a hunt hold what DuckDB gives (datetimes, decimals, UUIDs): made JSON's types here.
    return [i.model_dump(mode="json") if hasattr(i, "model_dump") else json.loads(json.dumps(i, default=str))
            for i in items]  # fmt: skip


def _csv(records: list[dict[str, Any]]) -> None:
    """One row per record, the columns every record has between them (first seen first); nested
    values as JSON in their cell, empty for none; text made spreadsheet-safe as the API's export."""
    import csv
    import sys

    from clampdown.views.base import spreadsheet_safe

    columns = list(dict.fromkeys(key for record in records for key in record))
    if not columns:
        return  # nothing listed: no header to guess
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        cells = (record.get(c) for c in columns)
        writer.writerow(_cell(v, spreadsheet_safe) for v in cells)


def _cell(value: Any, safe: Callable[[str], str]) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return safe(json.dumps(value, default=str))
    return safe(value) if isinstance(value, str) else value


def emit(
    items: Sequence[View] | Sequence[Mapping[str, Any]],
    output: Output,
    as_table: Callable[[], Table],
    *,
    quiet: bool = False,
    key: str = "id",
) -> None:
    """Print a listing as asked: `quiet`, the `key` of each item, one per line; else in `output`."""
    if quiet:
        for record in _records(items):
            print(record.get(key, ""))
    elif output == Output.JSON:
        if items and all(hasattr(i, "model_dump") for i in items):
            print_view(cast("Sequence[View]", items))
        else:
            print_json(_records(items))
    elif output == Output.CSV:
        _csv(_records(items))
    elif output == Output.YAML:
        import yaml  # type: ignore[import-untyped]

        print(yaml.safe_dump(_records(items), sort_keys=False, allow_unicode=True), end="")
    else:
        console.print(as_table())


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
    shown = table("id", "type", "target", "status", "requested by", "requested at", "outcome")
    for a in actions:
        outcome = a.error_message or (a.result or {}).get("message") or ""
        shown.add_row(
            str(a.id),
            a.type,
            a.account.name if a.account else a.target,
            str(a.status),
            a.requested_by,
            a.requested_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(outcome),
        )
    return shown


def action_detail(action: Action | ActionView) -> Table:
    from clampdown.views.actions import ActionView

    shown = table("field", "value", show_header=False)
    shown.columns[0].style = "bold"
    for key, value in ActionView.model_validate(action).model_dump(mode="json").items():
        if value in (None, [], {}):
            continue
        shown.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    return shown


def catalog_table(definitions: Sequence[ActionDefinition | Mapping[str, Any]]) -> Table:
    """The catalog, from its definitions or from their JSON (`to_json`, the API's /catalog)."""
    shown = table("id", "title", "inverse", "who may run it")
    for entry in definitions:
        d: Mapping[str, Any] = entry.to_json() if isinstance(entry, ActionDefinition) else entry
        who = ", ".join(sorted({*d["roles"], *d["permissions"]}))
        inverse = d["inverse"] or ("-" if d["reversible"] else "irreversible")
        shown.add_row(str(d["id"]), str(d["title"]), str(inverse), who)
    return shown


def rows_table(rows: list[dict[str, object]]) -> Table:
    """A table of flat rows, columns in the first row's order."""
    shown = table(*(rows[0] if rows else ()))
    for row in rows:
        shown.add_row(*("" if v is None else str(v) for v in row.values()))
    return shown
