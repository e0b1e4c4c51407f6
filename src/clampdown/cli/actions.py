"""`clampdown act` and `clampdown actions ...`: request actions and read the action center."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from clampdown import catalog
from clampdown.auth.principal import Principal
from clampdown.cli import render
from clampdown.cli.context import JsonOption, caller, load
from clampdown.cli.errors import EXIT_ACTION_FAILED, fail, run
from clampdown.cli.workers import warn_without_worker
from clampdown.errors import InvalidInput
from clampdown.model import Action, ActionFilter, ActionStatus
from clampdown.services.actions import ActionService, BulkRequest
from clampdown.services.runtime import open_runtime
from clampdown.views import ActionView, BulkView, PlanItemView, View

actions_app = typer.Typer(
    help="The action center: list, show, undo and cancel actions.", no_args_is_help=True
)


def _read_targets(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def act(
    action_id: Annotated[
        str, typer.Argument(help="Action id, e.g. okta.suspend_user (see `clampdown catalog`).")
    ],
    user: Annotated[str | None, typer.Argument(help="The user: name, UPN, email or id.")] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", "-r", help="Why; recorded with the action.")
    ] = None,
    from_file: Annotated[Path | None, typer.Option("--from-file", help="Bulk: one user per line.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the action ends.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits at most.")] = 300.0,
    idempotency_key: Annotated[
        str | None, typer.Option(help="The same key never queues a second action.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Undo automatically at this ISO time (with zone).")
    ] = None,
    request_approval: Annotated[bool, typer.Option(help="Ask a second person to approve first.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show what would change; change nothing.")] = False,
    instance: Annotated[
        str | None,
        typer.Option(help="The directory to act in ([providers.NAME]), where several of its kind are."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Request an action on one user, or on every user in a file."""
    from clampdown.cli.guardrails import parse_until, plan_rows
    from clampdown.services.planning import PlanItem, plan_actions

    settings = load()
    if (user is None) == (from_file is None):
        fail("give either a USER or --from-file FILE", 2)
    if dry_run:

        async def plan() -> list[PlanItem]:
            targets = _read_targets(from_file) if from_file else [user or ""]
            async with open_runtime(settings) as rt:
                principal = await caller(rt)
                return await plan_actions(rt.actions, action_id, targets, reason, principal, instance)

        items = run(plan())
        if as_json:
            render.print_view([PlanItemView.model_validate(i) for i in items])
        else:
            render.console.print("dry-run: nothing was changed")
            render.console.print(render.rows_table(plan_rows(items)))
        return

    opened: list[str] = []  # a secret the action made for the requester, opened once

    async def go() -> Action | BulkRequest:
        async with open_runtime(settings) as rt:
            principal = await caller(rt)
            if from_file is not None:
                targets = _read_targets(from_file)
                bulk = await rt.actions.request_bulk(
                    action_id, targets, reason, principal, idempotency_key=idempotency_key,
                    instance=instance,
                )  # fmt: skip
                if not as_json:
                    render.console.print(f"batch {bulk.batch_id}: {len(bulk.actions)} actions queued")
                    for refused in bulk.refused:
                        render.console.print(
                            f"not queued: {refused.target}: {refused.reason}", highlight=False
                        )
                if not wait:
                    return bulk
                await warn_without_worker(rt, any(a.status is ActionStatus.QUEUED for a in bulk.actions))
                await _follow_batch(rt.actions, principal, bulk.batch_id, len(bulk.actions), timeout, as_json)
                found = await rt.actions.get_many([a.id for a in bulk.actions], principal)
                return replace(bulk, actions=[found[a.id] for a in bulk.actions])
            assert user is not None
            action = await rt.actions.request(
                action_id, user, reason, principal, idempotency_key=idempotency_key,
                request_approval=request_approval, until=parse_until(until), instance=instance,
            )  # fmt: skip
            key = action.secret_key
            if wait:
                await warn_without_worker(rt, action.status is ActionStatus.QUEUED)
                action = (await rt.actions.wait([action.id], timeout))[0]
                if key and action.sealed_secret:
                    opened.append(await rt.actions.open_secret(action.id, key, principal))
            elif key and not as_json:
                render.console.print(
                    "note: this action makes a new password for you; it is handed over only with --wait",
                    highlight=False,
                )
            return action

    done = run(go())
    if isinstance(done, BulkRequest):
        # The same JSON as POST /api/v1/actions/bulk.
        _report(done.actions, BulkView.model_validate(done) if as_json else None, wait)
    else:
        _report([done], ActionView.model_validate(done) if as_json else None, wait)
        for secret in opened:  # shown once, on the terminal only: Clampdown keeps no copy
            if as_json:
                render.print_json({"action_id": done.id, "secret": secret})
            else:
                render.console.print(f"new password (shown once, not stored): {secret}", highlight=False)


def _report(actions: list[Action], shown: View | None, waited: bool) -> None:
    """`shown` is the JSON asked for (--json), the view of the API's twin route; else a summary."""
    if shown is not None:
        render.print_view(shown)
    elif len(actions) == 1:
        render.console.print(render.summary(actions[0]), highlight=False)
    elif waited:
        counts: dict[str, int] = {}
        for a in actions:
            counts[a.status.value] = counts.get(a.status.value, 0) + 1
        render.console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if waited:
        if any(not a.status.is_final for a in actions):
            fail(
                "still not finished: is a worker running (`clampdown serve` or `clampdown worker`)?",
                EXIT_ACTION_FAILED,
            )
        if any(a.status is ActionStatus.FAILED for a in actions):
            raise typer.Exit(EXIT_ACTION_FAILED)


async def _follow_batch(
    service: ActionService, principal: Principal, batch_id: str, total: int, timeout: float, quiet: bool
) -> None:
    flt = ActionFilter(batch_id=batch_id)
    deadline = asyncio.get_running_loop().time() + timeout
    with Progress(disable=quiet, console=render.errors) as progress:
        task = progress.add_task("running", total=total)
        while True:
            counts = await service.count_by_status(flt, principal)
            done = sum(n for s, n in counts.items() if s.is_final)
            progress.update(task, completed=done)
            if done >= total or asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.25)


def parse_since(value: str) -> datetime:
    """An ISO time, or an age like 30m, 2h, 7d."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--since: '{value}' is neither an ISO time nor an age like 30m, 2h, 7d") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@actions_app.command("list")
def actions_list(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="queued, running, completed, failed, cancelled")
    ] = None,
    type_id: Annotated[str | None, typer.Option("--type", help="Action id.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Target as given, or the account id.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Bulk batch id.")] = None,
    requested_by: Annotated[str | None, typer.Option("--requested-by")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time or age like 30m, 2h, 7d.")] = None,
    instance: Annotated[
        str | None, typer.Option("--instance", help="The directory it ran in ([providers.NAME]).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List actions, newest first."""
    settings = load()

    async def go() -> list[Action]:
        try:
            statuses = tuple(ActionStatus(s) for s in status or ())
        except ValueError:
            known = ", ".join(s.value for s in ActionStatus)
            raise InvalidInput(f"unknown status in {', '.join(status or [])}; use {known}") from None
        if type_id:
            catalog.get_action(type_id)
        flt = ActionFilter(
            statuses=statuses,
            type=type_id,
            instance=instance,
            target=user,
            batch_id=batch,
            requested_by=requested_by,
            since=parse_since(since) if since else None,
        )
        async with open_runtime(settings) as rt:
            return await rt.actions.list_actions(flt, await caller(rt), limit=limit)

    found = run(go())
    if as_json:
        render.print_view([ActionView.model_validate(a) for a in found])
    else:
        render.console.print(render.actions_table(found))


@actions_app.command("show")
def actions_show(action_id: int, as_json: JsonOption = False) -> None:
    """Every field of one action, with its attempts and errors."""
    settings = load()

    async def go() -> Action:
        async with open_runtime(settings) as rt:
            return await rt.actions.get(action_id, await caller(rt))

    action = run(go())
    if as_json:
        render.print_view(ActionView.model_validate(action))
    else:
        render.console.print(render.action_detail(action))


@actions_app.command("undo")
def actions_undo(
    action_id: int,
    reason: Annotated[str | None, typer.Option("--reason", "-r")] = None,
    request_approval: Annotated[bool, typer.Option(help="Ask a second person to approve first.")] = False,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    timeout: float = 300.0,
    as_json: JsonOption = False,
) -> None:
    """Queue the inverse of a completed action now (a timed release waiting for its time is
    replaced), restoring what was there before."""
    settings = load()

    async def go() -> Action:
        async with open_runtime(settings) as rt:
            principal = await caller(rt)
            undo = await rt.actions.undo(action_id, principal, reason, request_approval=request_approval)
            return (await rt.actions.wait([undo.id], timeout))[0] if wait else undo

    undo = run(go())
    _report([undo], ActionView.model_validate(undo) if as_json else None, wait)


@actions_app.command("cancel")
def actions_cancel(action_id: int, as_json: JsonOption = False) -> None:
    """Cancel a queued action; a running one is not retried after the attempt now running."""
    settings = load()

    async def go() -> Action:
        async with open_runtime(settings) as rt:
            return await rt.actions.cancel(action_id, await caller(rt))

    cancelled = run(go())
    _report([cancelled], ActionView.model_validate(cancelled) if as_json else None, False)
    if not as_json and cancelled.cancel_requested_by:
        render.console.print(
            "an attempt runs now: what it changes stands; the action is not retried after it", highlight=False
        )


def catalog_command(as_json: JsonOption = False) -> None:
    """The action types, who may run them, and their inverses."""
    definitions = list(catalog.all_actions())
    if as_json:
        render.print_json([d.to_json() for d in definitions])
    else:
        render.console.print(render.catalog_table(definitions))
