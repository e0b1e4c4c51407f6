"""The `clampdown` command: parses, calls services, prints. Nothing else lives here."""

from __future__ import annotations

import asyncio
import getpass
import logging
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from clampdown import catalog
from clampdown.cli import render
from clampdown.cli.errors import EXIT_ACTION_FAILED, fail, run
from clampdown.config import Settings, load_settings
from clampdown.connectors.registry import validate_provider
from clampdown.engine.worker import Worker
from clampdown.errors import ClampdownError, ConfigError, InvalidInput
from clampdown.model import Action, ActionStatus
from clampdown.services.runtime import open_runtime, ping_database
from clampdown.store.actions import ActionFilter
from clampdown.store.database import create_engine, is_sqlite
from clampdown.store.migrate import upgrade

app = typer.Typer(
    help="Clampdown: contain a compromised identity in AD, Entra ID and Okta.", no_args_is_help=True
)
actions_app = typer.Typer(
    help="The action center: list, show, undo and cancel actions.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(actions_app, name="actions")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Config file (else $CLAMPDOWN_CONFIG, ./clampdown.toml)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

_state: dict[str, Path | None] = {"config": None}


@app.callback()
def main(config: ConfigOption = None) -> None:
    _state["config"] = config


def _settings(config: Path | None = None) -> Settings:
    try:
        settings = load_settings(config or _state["config"])
    except ClampdownError as exc:
        fail(exc.message, 4)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def _requester() -> str:
    return f"cli:{getpass.getuser()}"


def _read_targets(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


@app.command()
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
    as_json: JsonOption = False,
) -> None:
    """Request an action on one user, or on every user in a file."""
    settings = _settings()
    if (user is None) == (from_file is None):
        fail("give either a USER or --from-file FILE", 2)

    async def go() -> list[Action]:
        async with open_runtime(settings) as rt:
            if from_file is not None:
                targets = _read_targets(from_file)
                bulk = await rt.actions.request_bulk(
                    action_id, targets, reason, _requester(), idempotency_key=idempotency_key
                )
                if not as_json:
                    render.console.print(f"batch {bulk.batch_id}: {len(bulk.actions)} actions queued")
                if wait:
                    await _follow_batch(rt.store, bulk.batch_id, len(bulk.actions), timeout, as_json)
                return [await rt.store.get(a.id) for a in bulk.actions] if wait else bulk.actions
            assert user is not None
            action = await rt.actions.request(
                action_id, user, reason, _requester(), idempotency_key=idempotency_key
            )
            if wait:
                action = (await rt.actions.wait([action.id], timeout))[0]
            return [action]

    result = run(go())
    _report(result, as_json, wait)


def _report(actions: list[Action], as_json: bool, waited: bool) -> None:
    if as_json:
        payload = [render.action_json(a) for a in actions]
        render.print_json(payload[0] if len(payload) == 1 else payload)
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


async def _follow_batch(store: object, batch_id: str, total: int, timeout: float, quiet: bool) -> None:
    from rich.progress import Progress

    from clampdown.store.actions import ActionStore

    assert isinstance(store, ActionStore)
    flt = ActionFilter(batch_id=batch_id)
    deadline = asyncio.get_running_loop().time() + timeout
    with Progress(disable=quiet, console=render.errors) as progress:
        task = progress.add_task("running", total=total)
        while True:
            counts = await store.count_by_status(flt)
            done = sum(n for s, n in counts.items() if s.is_final)
            progress.update(task, completed=done)
            if done >= total or asyncio.get_running_loop().time() >= deadline:
                return
            await asyncio.sleep(0.25)


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
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List actions, newest first."""
    settings = _settings()
    try:
        statuses = tuple(ActionStatus(s) for s in status or ())
    except ValueError:
        fail(f"unknown status in {status}; use {', '.join(s.value for s in ActionStatus)}", 2)
    if type_id:
        try:
            catalog.get_action(type_id)
        except InvalidInput as exc:
            fail(exc.message, 2)
    flt = ActionFilter(
        statuses=statuses,
        type=type_id,
        target=user,
        batch_id=batch,
        requested_by=requested_by,
        since=_parse_since(since) if since else None,
    )

    async def go() -> list[Action]:
        async with open_runtime(settings) as rt:
            return await rt.store.list_actions(flt, limit=limit)

    found = run(go())
    if as_json:
        render.print_json([render.action_json(a) for a in found])
    else:
        render.console.print(render.actions_table(found))


def _parse_since(value: str) -> datetime:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since: '{value}' is neither an ISO time nor an age like 30m, 2h, 7d", 2)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@actions_app.command("show")
def actions_show(action_id: int, as_json: JsonOption = False) -> None:
    """Every field of one action, with its attempts and errors."""
    settings = _settings()

    async def go() -> Action:
        async with open_runtime(settings) as rt:
            return await rt.actions.get(action_id)

    action = run(go())
    if as_json:
        render.print_json(render.action_json(action))
    else:
        render.console.print(render.action_detail(action))


@actions_app.command("undo")
def actions_undo(
    action_id: int,
    reason: Annotated[str | None, typer.Option("--reason", "-r")] = None,
    wait: Annotated[bool, typer.Option("--wait")] = False,
    timeout: float = 300.0,
    as_json: JsonOption = False,
) -> None:
    """Queue the inverse of a completed action, restoring what was there before."""
    settings = _settings()

    async def go() -> Action:
        async with open_runtime(settings) as rt:
            undo = await rt.actions.undo(action_id, _requester(), reason)
            return (await rt.actions.wait([undo.id], timeout))[0] if wait else undo

    _report([run(go())], as_json, wait)


@actions_app.command("cancel")
def actions_cancel(action_id: int, as_json: JsonOption = False) -> None:
    """Cancel a queued action."""
    settings = _settings()

    async def go() -> Action:
        async with open_runtime(settings) as rt:
            return await rt.actions.cancel(action_id, _requester())

    _report([run(go())], as_json, False)


@app.command()
def worker(
    until_drained: Annotated[bool, typer.Option(help="Exit once nothing is queued or running.")] = False,
) -> None:
    """Run a worker: claims queued actions and performs them. Run as many as you like on PostgreSQL."""
    settings = _settings()

    async def go() -> None:
        async with open_runtime(settings) as rt:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            logging.getLogger("clampdown").setLevel(logging.INFO)
            w = Worker(rt.store, rt.connectors, settings.engine)
            render.errors.print(f"worker {w.id} running ({', '.join(rt.connectors) or 'no providers'})")
            await w.run(stop, until_drained=until_drained)

    run(go())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to this version."""
    settings = _settings()

    run(_upgrade(settings))
    render.console.print("database schema is up to date")


@app.command("catalog")
def catalog_command(as_json: JsonOption = False) -> None:
    """The action types, who may run them, and their inverses."""
    definitions = list(catalog.all_actions())
    if as_json:
        render.print_json([d.to_json() for d in definitions])
    else:
        render.console.print(render.catalog_table(definitions))


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration and name every problem."""
    try:
        settings = load_settings(_state["config"])
    except ConfigError as exc:
        fail(exc.message, 4)
    problems = []
    for name, section in settings.providers.items():
        try:
            validate_provider(name, section)
        except ConfigError as exc:
            problems.append(exc.message)
    for name in settings.engine.provider_concurrency:
        if name not in catalog.providers() and name not in settings.providers:
            problems.append(f"engine.provider_concurrency.{name}: no such provider")
    if problems:
        fail("; ".join(problems), 4)
    where = settings.config_path or "defaults (no config file)"
    render.console.print(f"config OK: {where}; providers: {', '.join(settings.providers) or 'none'}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default from config: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from config: 8080).")] = None,
) -> None:
    """Run the API (and, on SQLite, the embedded worker)."""
    import uvicorn

    from clampdown.api.app import create_app

    settings = _settings()
    logging.getLogger("clampdown").setLevel(logging.INFO)
    if is_sqlite(settings.database.url):
        run(_upgrade(settings))  # the embedded default sets itself up; PostgreSQL is upgraded on purpose
    uvicorn.run(
        create_app(settings),
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_level=settings.log_level.lower(),
    )


async def _upgrade(settings: Settings) -> None:
    engine = create_engine(settings.database.url)
    try:
        await ping_database(engine, settings.database.url)
        await upgrade(engine)
    finally:
        await engine.dispose()


lab_app = typer.Typer(
    help="The local lab: Samba AD DC, Okta and Graph emulators, demo people.", no_args_is_help=True
)
app.add_typer(lab_app, name="lab")
LabDir = Annotated[Path, typer.Option("--dir", help="Where the lab keeps its state and config.")]


@lab_app.command("up")
def lab_up_command(lab_dir: LabDir = Path(".lab")) -> None:
    """Start everything on loopback, seed the demo people, write DIR/clampdown.toml and DIR/lab.json."""
    from clampdown.lab.orchestrator import lab_up

    try:
        services = lab_up(lab_dir)
    except ClampdownError as exc:
        fail(exc.message, 1)
    settings = _settings(lab_dir / "clampdown.toml")
    run(_upgrade(settings))
    for s in services:
        render.console.print(f"{s.name}: {s.url}")
    render.console.print(f"wrote {lab_dir / 'clampdown.toml'} and {lab_dir / 'lab.json'}")
    render.console.print(f"next: clampdown --config {lab_dir / 'clampdown.toml'} serve")


@lab_app.command("status")
def lab_status_command(lab_dir: LabDir = Path(".lab")) -> None:
    """Whether each lab part runs, and where."""
    from clampdown.lab.orchestrator import lab_status

    for name, line in lab_status(lab_dir).items():
        render.console.print(f"{name}: {line}")


@lab_app.command("down")
def lab_down_command(lab_dir: LabDir = Path(".lab")) -> None:
    """Stop every lab part started under DIR."""
    from clampdown.lab.orchestrator import lab_down

    lab_down(lab_dir)
    render.console.print("lab stopped")
