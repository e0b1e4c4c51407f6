"""`clampdown workers`: who works the queue, whether each is live, and what each holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from clampdown.cli import render
from clampdown.cli.actions import either
from clampdown.cli.context import (
    JsonOption,
    OutputOption,
    QuietOption,
    output_format,
)

if TYPE_CHECKING:
    from clampdown.services.runtime import Runtime
    from clampdown.views import WorkerView

_SHOWN_HOLDS = 10


def _table(found: list[WorkerView]) -> Table:
    table = render.table("worker", "kind", "state", "started", "last seen", "in flight", "holds")
    for w in found:
        holds = ", ".join(str(i) for i in w.holds[:_SHOWN_HOLDS])
        if len(w.holds) > _SHOWN_HOLDS:
            holds += f" and {len(w.holds) - _SHOWN_HOLDS} more"
        started, seen = (t.strftime("%Y-%m-%d %H:%M:%S") for t in (w.started_at, w.last_seen_at))
        state = "live" if w.live else "dead"
        table.add_row(w.id, w.kind, state, started, seen, str(w.inflight), holds or "-")
    return table


def workers(as_json: JsonOption = False, output: OutputOption = None, quiet: QuietOption = False) -> None:
    """The workers registered in the database: live or dead, and the actions each holds."""
    from clampdown.views import WorkerView

    found = [WorkerView.model_validate(w) for w in either(
        lambda api: api.workers(), lambda rt, who: rt.workers.list_workers(who)
    )]  # fmt: skip
    shown = output_format(output, as_json)
    if found or shown != render.Output.TABLE or quiet:
        render.emit(found, shown, lambda: _table(found), quiet=quiet)
    else:
        render.console.print(
            "no worker is registered: start `clampdown serve` (SQLite) or `clampdown worker`"
        )


async def warn_without_worker(rt: Runtime, queued: bool) -> None:
    """`--wait` on queued work that no live worker can take: say so at once, then wait anyway (a
    worker started meanwhile still takes it; the timeout ends the wait)."""
    if queued and (warning := await rt.workers.no_worker_warning()):
        render.errors.print(f"warning: {warning}; waiting anyway ...", highlight=False, soft_wrap=True)
