"""`clampdown contain|release`, approvals, dry-runs and `clampdown audit verify|export`."""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clampdown.cli import render
from clampdown.cli.actions import either, server_profile
from clampdown.cli.context import (
    JsonOption,
    OutputOption,
    QuietOption,
    caller,
    load,
    open_runtime,
    output_format,
)
from clampdown.cli.errors import EXIT_ACTION_FAILED, run
from clampdown.errors import ConfigError, InvalidInput
from clampdown.limits import clean_time
from clampdown.model import StepRole

if TYPE_CHECKING:
    from clampdown.cli.remote import ServerProfile
    from clampdown.services.planning import PlanItem
    from clampdown.services.playbooks import PlaybookRun
    from clampdown.views import AuditCheckpointView, AuditReportView, PlanItemView, PlaybookRunView

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
Until = Annotated[
    str | None, typer.Option("--until", help="Release automatically at this ISO time (with zone).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
Approval = Annotated[bool, typer.Option("--request-approval", help="Ask a second person to approve first.")]


def parse_until(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--until: '{value}' is not an ISO time like 2026-11-30T08:00:00+00:00") from None
    return clean_time("--until", parsed)  # a zone and a sane range, or converting it may overflow


def plan_rows(plan: Sequence[PlanItem | PlanItemView]) -> list[dict[str, object]]:
    """A plan as table rows for people."""
    from clampdown.views import PlanItemView

    return [PlanItemView.model_validate(p).model_dump() for p in plan]


def _print_run(result: PlaybookRun | PlaybookRunView, as_json: bool) -> None:
    from clampdown.views import PlaybookRunView

    if as_json:
        render.print_view(PlaybookRunView.model_validate(result))
        return
    if result.batch_id is None:
        render.console.print(f"dry-run of {result.playbook} for {result.person}: nothing was changed")
        render.console.print(render.rows_table(plan_rows(result.plan)))
    else:
        render.console.print(
            f"{result.playbook} for {result.person}: containment {result.containment_id}, "
            f"batch {result.batch_id}"
        )
        for action in result.actions:
            render.console.print("  " + render.summary(action), highlight=False)
    for line in result.skipped:
        render.console.print(f"  skipped {line}", highlight=False)
    for line in result.notes:
        render.console.print(f"  note: {line}", highlight=False)


def _playbook_command(name: str, user: str, reason: str | None, until: str | None, dry_run: bool,
                      request_approval: bool, wait: bool, timeout: float, as_json: bool,
                      incident: str | None = None) -> None:  # fmt: skip
    if (profile := server_profile()) is not None:
        done = _playbook_remotely(profile, name, user, reason, parse_until(until), dry_run, request_approval,
                                  wait, timeout, incident)  # fmt: skip
        _print_run(done, as_json)
        if wait and any(a.status == "failed" for a in done.actions):
            raise typer.Exit(EXIT_ACTION_FAILED)
        return
    settings = load()

    async def go() -> PlaybookRun:
        async with open_runtime(settings) as rt:
            principal = await caller(rt)
            result = await rt.playbooks.run(
                name, user, reason, principal,
                until=parse_until(until), request_approval=request_approval, dry_run=dry_run,
                incident=incident,
            )  # fmt: skip
            if wait and result.actions:
                # A timed release is not waited for: it runs at --until.
                now_ids = [a.id for a in result.actions if a.containment_role != StepRole.TIMER]
                waited = {a.id: a for a in await rt.actions.wait(now_ids, timeout)}
                result = replace(result, actions=[waited.get(a.id, a) for a in result.actions])
            return result

    result = run(go())
    _print_run(result, as_json)
    if wait and any(a.status.value == "failed" for a in result.actions):
        raise typer.Exit(EXIT_ACTION_FAILED)


def _playbook_remotely(
    profile: ServerProfile, name: str, user: str, reason: str | None, until: datetime | None,
    dry_run: bool, request_approval: bool, wait: bool, timeout: float, incident: str | None = None,
) -> PlaybookRunView:  # fmt: skip
    """`contain` or `release` through the server's API: run the playbook, then with --wait poll its
    actions (a timed release is not waited for: it runs at --until)."""
    from clampdown.cli.remote import connect

    async def go() -> PlaybookRunView:
        async with connect(profile) as api:
            result = await api.run_playbook(
                name, user, reason, until=until, request_approval=request_approval, dry_run=dry_run,
                incident=incident,
            )  # fmt: skip
            if wait and result.actions and result.batch_id:
                now_ids = [a.id for a in result.actions if a.containment_role != StepRole.TIMER]
                waited = {a.id: a for a in await api.wait_many(now_ids, result.batch_id, timeout)}
                actions = [waited.get(a.id, a) for a in result.actions]
                result = result.model_copy(update={"actions": actions})
            return result

    return run(go())


def contain(
    user: Annotated[str, typer.Argument(help="The person: any of their names, UPN, email or ids.")],
    reason: Annotated[str | None, typer.Option("--reason", "-r")] = None,
    playbook: Annotated[str, typer.Option(help="Which configured playbook.")] = "contain",
    until: Until = None,
    dry_run: DryRun = False,
    request_approval: Approval = False,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    timeout: float = 300.0,
    incident: Annotated[
        str | None, typer.Option("--incident", help="The incident (ticket id) it is part of, e.g. INC-42.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Contain a person everywhere in one step: every linked account, in hybrid-safe order."""
    _playbook_command(
        playbook, user, reason, until, dry_run, request_approval, wait, timeout, as_json, incident
    )


def release(
    user: Annotated[str, typer.Argument(help="The person to release.")],
    reason: Annotated[str | None, typer.Option("--reason", "-r")] = None,
    dry_run: DryRun = False,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    timeout: float = 300.0,
    as_json: JsonOption = False,
) -> None:
    """Undo what the person's latest containment changed, restoring each account as it was."""
    from clampdown.services.playbooks import RELEASE

    _playbook_command(RELEASE, user, reason, None, dry_run, False, wait, timeout, as_json)


def _decide(approve: bool, action_ids: list[int], batch: str | None, note: str | None, as_json: bool) -> None:
    from clampdown.views import ActionView

    decided = either(
        lambda api: api.decide(approve, action_ids, batch, note),
        lambda rt, who: rt.approvals.decide(
            who, approve, action_ids=action_ids, batch_id=batch, note=note, source=socket.gethostname()
        ),
    )
    if as_json:
        render.print_view([ActionView.model_validate(a) for a in decided])
    else:
        for action in decided:
            render.console.print(render.summary(action), highlight=False)


def approve(
    action_ids: Annotated[list[int] | None, typer.Argument(help="Action ids.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Every waiting action of a batch.")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    as_json: JsonOption = False,
) -> None:
    """Approve requests awaiting a second person (never your own)."""
    _decide(True, action_ids or [], batch, note, as_json)


def reject(
    action_ids: Annotated[list[int] | None, typer.Argument(help="Action ids.")] = None,
    batch: Annotated[str | None, typer.Option("--batch")] = None,
    note: Annotated[str | None, typer.Option("--note")] = None,
    as_json: JsonOption = False,
) -> None:
    """Reject requests awaiting approval."""
    _decide(False, action_ids or [], batch, note, as_json)


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="Also check against checkpoints kept elsewhere (JSON files)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Walk the audit chain; name every edited, deleted or reordered entry, and (with a checkpoint
    key) entries missing or rewritten since the latest signed checkpoint."""
    from clampdown.services.audit_trail import read_outside_checkpoints
    from clampdown.views import AuditReportView

    settings = load()
    outside = read_outside_checkpoints(checkpoint or [])

    async def go() -> AuditReportView:
        async with open_runtime(settings) as rt:
            return AuditReportView.model_validate(await rt.audit.verify(outside))

    report = run(go())
    if as_json:
        render.print_view(report)
    else:
        for found in report.breaks:
            render.console.print(f"entry {found.seq}: {found.problem}", highlight=False)
        for warning in report.warnings:
            render.errors.print(f"warning: {warning}", highlight=False)
        anchored = ""
        if report.checkpoint is not None:
            cp = report.checkpoint
            anchored = f", anchored by the checkpoint of {cp.at.isoformat()} (entry {cp.seq})"
        render.console.print(
            f"{report.entries} entries checked: "
            + ("chain intact" + anchored if report.ok else f"{len(report.breaks)} breaks"),
            highlight=False,
        )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(as_json: JsonOption = False) -> None:
    """Sign a checkpoint of the chain's head now (the server and workers make them on their own)."""
    from clampdown.views import AuditCheckpointView

    settings = load()

    async def go() -> AuditCheckpointView | None:
        async with open_runtime(settings) as rt:
            if rt.anchor is None:
                raise ConfigError("no [audit] checkpoint_key is configured: nothing can sign a checkpoint")
            made = await rt.anchor.checkpoint()
            return AuditCheckpointView.model_validate(made) if made else None

    made = run(go())
    if as_json:
        print(made.model_dump_json(indent=2) if made else "null")
    elif made is None:
        render.console.print("nothing new since the latest checkpoint")
    else:
        render.console.print(
            f"checkpoint of entry {made.seq} ({made.entries} entries) at {made.at.isoformat()}"
        )


@audit_app.command("export")
def audit_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: standard output).")
    ] = None,
) -> None:
    """Export the audit log as JSON lines, with each entry's hashes for independent checking."""
    settings = load()

    async def go() -> int:
        count = 0
        handle = output.open("w", encoding="utf-8") if output else None
        try:
            async with open_runtime(settings) as rt:
                async for row in rt.audit.rows():
                    line = json.dumps(
                        row, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)
                    )
                    if handle:
                        handle.write(line + "\n")
                    else:
                        print(line)
                    count += 1
        finally:
            if handle:
                handle.close()
        return count

    count = run(go())
    if output:
        render.errors.print(f"{count} entries written to {output}")


def pending_approvals(
    as_json: JsonOption = False, output: OutputOption = None, quiet: QuietOption = False
) -> None:
    """Requests awaiting approval."""
    from clampdown.views import ActionView

    found = either(lambda api: api.pending(), lambda rt, who: rt.approvals.pending(who))
    views = [ActionView.model_validate(a) for a in found]
    render.emit(views, output_format(output, as_json), lambda: render.actions_table(found), quiet=quiet)
