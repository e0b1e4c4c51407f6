"""How the CLI shows actions and the catalog: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from clampdown.catalog import ActionDefinition
from clampdown.model import Action

console = Console()
errors = Console(stderr=True)


def action_json(action: Action) -> dict[str, Any]:
    """Every field of an action, JSON-safe."""

    def ts(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": action.id,
        "type": action.type,
        "provider": action.provider,
        "target": action.target,
        "account": action.account.to_json() if action.account else None,
        "status": action.status.value,
        "requested_by": action.requested_by,
        "reason": action.reason,
        "idempotency_key": action.idempotency_key,
        "batch_id": action.batch_id,
        "undoes_action_id": action.undoes_action_id,
        "attempts": action.attempts,
        "requested_at": ts(action.requested_at),
        "started_at": ts(action.started_at),
        "finished_at": ts(action.finished_at),
        "result": action.result,
        "error": {"code": action.error_code, "message": action.error_message} if action.error_code else None,
        "state_before": action.state_before.to_json() if action.state_before else None,
        "provider_request_id": action.provider_request_id,
        "history": [h.to_json() for h in action.history],
        "after_action_id": action.after_action_id,
        "playbook": action.playbook,
        "approval_reason": action.approval_reason,
        "approved_by": action.approved_by,
    }


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


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
    for key, value in action_json(action).items():
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
