"""`clampdown act` and `clampdown actions ...`: request actions and read the action center.

Given a server (`--server`), `catalog`, `actions list|show` and `act` on one user ask it over the
REST API (cli/remote.py) and print the same; otherwise they open the database. The services, the
views and httpx are imported inside the commands, so that `clampdown --help` loads none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from clampdown import catalog
from clampdown.cli import render
from clampdown.cli.context import (
    JsonOption,
    OutputOption,
    QuietOption,
    caller,
    load,
    open_runtime,
    output_format,
    server,
)
from clampdown.cli.errors import EXIT_ACTION_FAILED, fail, run
from clampdown.errors import InvalidInput
from clampdown.model import Action, ActionFilter, ActionSource, ActionStatus

if TYPE_CHECKING:
    from clampdown.auth.principal import Principal
    from clampdown.cli.remote import RemoteApi, ServerProfile
    from clampdown.services.actions import ActionService, BulkRequest
    from clampdown.services.runtime import Runtime
    from clampdown.views import ActionView, View

R = TypeVar("R")
L = TypeVar("L")

actions_app = typer.Typer(
    help="The action center: list, show, undo and cancel actions.", no_args_is_help=True
)


def server_profile() -> ServerProfile | None:
    """The server the command talks to, or None (then it opens the database)."""
    if server() is None:
        return None
    from clampdown.cli.remote import ServerProfile

    try:
        return ServerProfile.from_options()
    except InvalidInput as exc:
        fail(exc.message, 2)


def either(
    remote: Callable[[RemoteApi], Awaitable[R]], local: Callable[[Runtime, Principal], Awaitable[L]]
) -> R | L:
    """Ask the server (`remote`, given --server or a profile) or the database (`local`, with the
    caller's token checked) the same question; the command prints the answer the same either way."""
    if (profile := server_profile()) is not None:
        from clampdown.cli.remote import connect

        async def ask() -> R:
            async with connect(profile) as api:
                return await remote(api)

        return run(ask())
    settings = load()

    async def go() -> L:
        async with open_runtime(settings) as rt:
            return await local(rt, await caller(rt))

    return run(go())


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
    incident: Annotated[
        str | None, typer.Option("--incident", help="The incident (ticket id) it is part of, e.g. INC-42.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Request an action on one user, or on every user in a file."""
    from clampdown.cli.guardrails import parse_until, plan_rows

    if (user is None) == (from_file is None):
        fail("give either a USER or --from-file FILE", 2)
    if (profile := server_profile()) is not None:
        if from_file is not None or dry_run:
            targets = _targets(user, from_file)
            _bulk_remotely(profile, action_id, targets, reason, wait, timeout, idempotency_key, instance,
                           as_json, incident, dry_run)  # fmt: skip
            return
        assert user is not None
        _act_remotely(profile, action_id, user, reason, wait, timeout, idempotency_key, parse_until(until),
                      request_approval, instance, as_json, incident)  # fmt: skip
        return
    from clampdown.services.actions import BulkRequest
    from clampdown.services.planning import PlanItem, plan_actions
    from clampdown.views import ActionView, BulkView, PlanItemView

    settings = load()
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
        from clampdown.cli.workers import warn_without_worker

        async with open_runtime(settings) as rt:
            principal = await caller(rt)
            if from_file is not None:
                targets = _read_targets(from_file)
                bulk = await rt.actions.request_bulk(
                    action_id, targets, reason, principal, idempotency_key=idempotency_key,
                    instance=instance, incident=incident,
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
                incident=incident,
            )  # fmt: skip
            key = action.secret_key
            if wait:
                await warn_without_worker(rt, action.status is ActionStatus.QUEUED)
                action = (await rt.actions.wait([action.id], timeout))[0]
                if key and action.sealed_secret:
                    opened.append(await rt.actions.open_secret(action.id, key, principal))
            elif key and not as_json:
                _note_secret_needs_wait()
            return action

    done = run(go())
    if isinstance(done, BulkRequest):
        # The same JSON as POST /api/v1/actions/bulk.
        _report(done.actions, BulkView.model_validate(done) if as_json else None, wait)
    else:
        _report([done], ActionView.model_validate(done) if as_json else None, wait)
        _print_secrets(done.id, opened, as_json)


def _targets(user: str | None, from_file: Path | None) -> list[str]:
    try:
        return _read_targets(from_file) if from_file else [user or ""]
    except InvalidInput as exc:
        fail(exc.message, 2)


def _bulk_remotely(
    profile: ServerProfile, action_id: str, targets: list[str], reason: str | None, wait: bool,
    timeout: float, idempotency_key: str | None, instance: str | None, as_json: bool, incident: str | None,
    dry_run: bool,
) -> None:  # fmt: skip
    """`act --from-file` (or `--dry-run`) through the server's API, printing what local mode prints."""
    from clampdown.cli.guardrails import plan_rows
    from clampdown.cli.remote import connect
    from clampdown.views import BulkView, PlanItemView

    if dry_run:

        async def plan() -> list[PlanItemView]:
            async with connect(profile) as api:
                return await api.plan(action_id, targets, reason, instance)

        items = run(plan())
        if as_json:
            render.print_view(items)
        else:
            render.console.print("dry-run: nothing was changed")
            render.console.print(render.rows_table(plan_rows(items)))
        return

    async def go() -> BulkView:
        async with connect(profile) as api:
            bulk = await api.request_bulk(action_id, targets, reason, instance=instance, incident=incident,
                                          idempotency_key=idempotency_key)  # fmt: skip
            if not as_json:
                render.console.print(f"batch {bulk.batch_id}: {len(bulk.actions)} actions queued")
                for refused in bulk.refused:
                    render.console.print(f"not queued: {refused.target}: {refused.reason}", highlight=False)
            if wait and bulk.actions:
                ended = await api.wait_many([a.id for a in bulk.actions], bulk.batch_id, timeout)
                bulk = bulk.model_copy(update={"actions": ended})
            return bulk

    done = run(go())
    _report(done.actions, done if as_json else None, wait)


def _act_remotely(
    profile: ServerProfile, action_id: str, user: str, reason: str | None, wait: bool, timeout: float,
    idempotency_key: str | None, until: datetime | None, request_approval: bool, instance: str | None,
    as_json: bool, incident: str | None = None,
) -> None:  # fmt: skip
    """`act` on one user through the server's API: POST the action, then with --wait poll it."""
    from clampdown.cli.remote import connect

    opened: list[str] = []

    async def go() -> ActionView:
        async with connect(profile) as api:
            action, key = await api.request_action(
                action_id, user, reason, request_approval=request_approval, until=until, instance=instance,
                idempotency_key=idempotency_key, incident=incident,
            )  # fmt: skip
            if wait:
                action = await api.wait(action.id, timeout)
                if key and action.status == ActionStatus.COMPLETED:
                    opened.append(await api.open_secret(action.id, key))
            elif key and not as_json:
                _note_secret_needs_wait()
            return action

    done = run(go())
    _report([done], done if as_json else None, wait)
    _print_secrets(done.id, opened, as_json)


def _note_secret_needs_wait() -> None:
    render.console.print(
        "note: this action makes a new password for you; it is handed over only with --wait",
        highlight=False,
    )


def _print_secrets(action_id: int, opened: list[str], as_json: bool) -> None:
    for secret in opened:  # shown once, on the terminal only: Clampdown keeps no copy
        if as_json:
            render.print_json({"action_id": action_id, "secret": secret})
        else:
            render.console.print(f"new password (shown once, not stored): {secret}", highlight=False)


def _report(actions: Sequence[Action | ActionView], shown: View | None, waited: bool) -> None:
    """`shown` is the JSON asked for (--json), the view of the API's twin route; else a summary."""
    if shown is not None:
        render.print_view(shown)
    elif len(actions) == 1:
        render.console.print(render.summary(actions[0]), highlight=False)
    elif waited:
        counts: dict[str, int] = {}
        for a in actions:
            counts[str(a.status)] = counts.get(str(a.status), 0) + 1
        render.console.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    if waited:
        statuses = [ActionStatus(a.status) for a in actions]
        if any(not s.is_final for s in statuses):
            fail(
                "still not finished: is a worker running (`clampdown serve` or `clampdown worker`)?",
                EXIT_ACTION_FAILED,
            )
        if ActionStatus.FAILED in statuses:
            raise typer.Exit(EXIT_ACTION_FAILED)


async def _follow_batch(
    service: ActionService, principal: Principal, batch_id: str, total: int, timeout: float, quiet: bool
) -> None:
    import asyncio

    from rich.progress import Progress

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
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Where it came from: manual, user_page, side_panel, hunting, playbook, rule, "
            "timed_release, watch.",
        ),
    ] = None,
    incident: Annotated[str | None, typer.Option("--incident", help="The incident (ticket id).")] = None,
    error_code: Annotated[str | None, typer.Option("--error-code", help="Why it failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOption = False,
    output: OutputOption = None,
    quiet: QuietOption = False,
) -> None:
    """List actions, newest first."""
    shown = output_format(output, as_json)
    try:
        statuses = tuple(ActionStatus(s) for s in status or ())
    except ValueError:
        known = ", ".join(s.value for s in ActionStatus)
        fail(f"unknown status in {', '.join(status or [])}; use {known}", 2)
    try:
        origin = ActionSource(source) if source else None
    except ValueError:
        fail(f"unknown source {source}; use {', '.join(s.value for s in ActionSource)}", 2)
    more = replace(ActionFilter(), source=origin, incident=incident, error_code=error_code)

    def flt() -> ActionFilter:  # inside the command's run: a bad --type or --since is one clear line
        return _filter(statuses, type_id, instance, user, batch, requested_by, since, more)

    found = either(
        lambda api: api.list_actions(_query(flt()), limit),
        lambda rt, who: rt.actions.list_actions(flt(), who, limit=limit),
    )
    _print_actions(found, shown, quiet)


def _filter(
    statuses: tuple[ActionStatus, ...], type_id: str | None, instance: str | None, user: str | None,
    batch: str | None, requested_by: str | None, since: str | None, more: ActionFilter | None = None,
) -> ActionFilter:  # fmt: skip
    """The filter of `actions list`; `more`: its source, incident and error code."""
    if type_id:
        catalog.get_action(type_id)
    return replace(
        more or ActionFilter(),
        statuses=statuses,
        type=type_id,
        instance=instance,
        target=user,
        batch_id=batch,
        requested_by=requested_by,
        since=parse_since(since) if since else None,
    )


def _query(flt: ActionFilter) -> list[tuple[str, str]]:
    """The filter as GET /api/v1/actions takes it."""
    params = [("status", s.value) for s in flt.statuses]
    named = {
        "type": flt.type,
        "instance": flt.instance,
        "target": flt.target,
        "batch": flt.batch_id,
        "requested_by": flt.requested_by,
        "since": flt.since.isoformat() if flt.since else None,
        "source": flt.source.value if flt.source else None,
        "incident": flt.incident,
        "error_code": flt.error_code,
    }
    return params + [(k, v) for k, v in named.items() if v is not None]


def _print_actions(found: Sequence[Action | ActionView], output: render.Output, quiet: bool = False) -> None:
    from clampdown.views import ActionView

    views = [ActionView.model_validate(a) for a in found]
    render.emit(views, output, lambda: render.actions_table(found), quiet=quiet)


@actions_app.command("show")
def actions_show(action_id: int, as_json: JsonOption = False) -> None:
    """Every field of one action, with its attempts and errors."""
    from clampdown.views import ActionView

    shown = either(lambda api: api.get_action(action_id), lambda rt, who: rt.actions.get(action_id, who))
    if as_json:
        render.print_view(ActionView.model_validate(shown))
    else:
        render.console.print(render.action_detail(shown))


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
    from clampdown.views import ActionView

    async def remote(api: RemoteApi) -> ActionView:
        queued = await api.undo(action_id, reason, request_approval)
        return await api.wait(queued.id, timeout) if wait else queued

    async def local(rt: Runtime, principal: Principal) -> Action:
        undo = await rt.actions.undo(action_id, principal, reason, request_approval=request_approval)
        return (await rt.actions.wait([undo.id], timeout))[0] if wait else undo

    undo = either(remote, local)
    _report([undo], ActionView.model_validate(undo) if as_json else None, wait)


@actions_app.command("cancel")
def actions_cancel(action_id: int, as_json: JsonOption = False) -> None:
    """Cancel a queued action; a running one is not retried after the attempt now running."""
    from clampdown.views import ActionView

    cancelled = either(lambda api: api.cancel(action_id), lambda rt, who: rt.actions.cancel(action_id, who))
    _report([cancelled], ActionView.model_validate(cancelled) if as_json else None, False)
    if not as_json and cancelled.cancel_requested_by:
        render.console.print(
            "an attempt runs now: what it changes stands; the action is not retried after it", highlight=False
        )


def catalog_command(
    as_json: JsonOption = False, output: OutputOption = None, quiet: QuietOption = False
) -> None:
    """The action types, who may run them, and their inverses."""
    if (profile := server_profile()) is not None:
        from clampdown.cli.remote import connect

        async def ask() -> list[dict[str, Any]]:
            async with connect(profile) as api:
                return await api.catalog()

        shown = run(ask())
    else:
        shown = [d.to_json() for d in catalog.all_actions()]
    render.emit(shown, output_format(output, as_json), lambda: render.catalog_table(shown), quiet=quiet)
