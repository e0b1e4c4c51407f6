"""`clampdown containments list|show`: who is contained, why, until when, and every step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from clampdown.cli import render
from clampdown.cli.actions import either
from clampdown.cli.context import (
    JsonOption,
    OutputOption,
    QuietOption,
    caller,
    load,
    open_runtime,
    output_format,
)
from clampdown.cli.errors import fail, run
from clampdown.errors import InvalidInput
from clampdown.model import ContainmentState, ResidualAccess, ResidualStatus

if TYPE_CHECKING:
    from clampdown.services.watch import WatchRound
    from clampdown.views import ContainmentView, ResidualAccessView

containments_app = typer.Typer(
    help="Containments: one per person contained, with its steps.", no_args_is_help=True
)


def _states(given: list[str] | None) -> list[ContainmentState]:
    try:
        return [ContainmentState(s) for s in given or ()]
    except ValueError:
        known = ", ".join(s.value for s in ContainmentState)
        raise InvalidInput(f"unknown state in {', '.join(given or [])}; use {known}") from None


def _table(found: Sequence[ContainmentView]) -> Table:
    table = render.table("id", "person", "state", "until", "requested by", "reason", "created at")
    for c in found:
        until = c.until.strftime("%Y-%m-%d %H:%M:%S") if c.until else "-"
        table.add_row(str(c.id), c.person, c.state, until, c.requested_by, c.reason,
                      c.created_at.strftime("%Y-%m-%d %H:%M:%S"))  # fmt: skip
    return table


@containments_app.command("list")
def containments_list(
    state: Annotated[list[str] | None, typer.Option("--state", help="active, released, expired, ...")] = None,
    person: Annotated[str | None, typer.Option("--person", help="Any name of the person.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
    output: OutputOption = None,
    quiet: QuietOption = False,
) -> None:
    """Containments newest first (`--state active`: who is contained now)."""
    from clampdown.views import ContainmentView

    try:
        states = _states(state)
    except InvalidInput as exc:
        fail(exc.message, 2)
    found = either(
        lambda api: api.containments([s.value for s in states], person, limit),
        lambda rt, who: rt.playbooks.containments_of(who, states=states, person=person, limit=limit),
    )
    views = [ContainmentView.model_validate(c) for c in found]
    render.emit(views, output_format(output, as_json), lambda: _table(views), quiet=quiet)


@containments_app.command("show")
def containments_show(containment_id: int, as_json: JsonOption = False) -> None:
    """One containment: its accounts, state, and every step, timed release, release and undo."""
    from clampdown.views import ContainmentView

    found = ContainmentView.model_validate(
        either(
            lambda api: api.containment(containment_id),
            lambda rt, who: rt.playbooks.containment(who, containment_id, residual=True),
        )
    )
    if as_json:
        render.print_view(found)
        return
    render.console.print(_table([found]))
    for line in (*found.notes, *([f"ended: {found.end_reason}"] if found.end_reason else [])):
        render.console.print(f"  {line}", highlight=False)
    for action in found.actions:
        render.console.print(
            f"  [{action.containment_role}] " + render.summary(action), highlight=False, markup=False
        )
    if found.residual is not None:
        render.console.print("What may still work:", highlight=False)
        for line in residual_lines(found.residual):
            render.console.print(f"  {line}", highlight=False, markup=False)


def residual_lines(found: Sequence[ResidualAccess | ResidualAccessView]) -> list[str]:
    """One line per kind of access: provider, account, kind, status (until when), what, what is left."""
    lines = []
    for item in found:
        status = str(getattr(item.status, "value", item.status))
        if status == ResidualStatus.UNTIL.value and item.until is not None:
            status = f"until {item.until.strftime('%Y-%m-%d %H:%M:%S %Z')}"
        left = f" [{', '.join(item.items)}]" if item.items else ""
        lines.append(f"{item.provider} {item.account} {item.kind}: {status}: {item.detail}{left}")
    return lines


@containments_app.command("watch")
def containments_watch(as_json: JsonOption = False) -> None:
    """Read the accounts of every active containment again now: a step undone outside Clampdown is
    audited, noted and, where the playbook says so, applied again (`clampdown serve` does this
    every watch.interval_seconds)."""
    from clampdown.views import WatchRoundView

    settings = load()

    async def go() -> WatchRound:
        async with open_runtime(settings) as rt:
            return await rt.watch().run_now(await caller(rt))

    found = run(go())
    if as_json:
        render.print_view(WatchRoundView.model_validate(found))
        return
    render.console.print(
        f"{found.containments} active containments, {found.accounts} accounts read, "
        f"{len(found.drifts)} drifted, {len(found.reapplied)} steps applied again",
        highlight=False,
    )
    for drift in found.drifts:
        render.console.print(f"  {drift.note}", highlight=False, markup=False)
    for action in found.reapplied:
        render.console.print("  again: " + render.summary(action), highlight=False, markup=False)
    for account, why in found.unreadable.items():
        render.console.print(f"  not read: {account}: {why}", highlight=False, markup=False)
