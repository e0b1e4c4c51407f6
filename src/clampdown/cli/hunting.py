"""`clampdown hunt` and `clampdown ingest ...`: hunt in the event store and feed it from files."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from clampdown.auth.principal import require_permission
from clampdown.cli import render
from clampdown.cli.actions import server_profile
from clampdown.cli.context import JsonOption, OutputOption, caller, load, open_runtime, output_format
from clampdown.cli.errors import fail, run
from clampdown.errors import InvalidInput
from clampdown.permissions import HUNTING_MANAGE

if TYPE_CHECKING:  # the hunting package (DuckDB, pyarrow) is imported by the commands that use it
    from clampdown.hunting.ingest import IngestReport
    from clampdown.hunting.pulls import PullReport
    from clampdown.hunting.query import QueryResult
    from clampdown.hunting.service import ActOnResults
    from clampdown.views import ActOnResultsView, QueryResultView

ingest_app = typer.Typer(
    help="Feed the hunting event store: EVTX, Winlogbeat JSON lines, API pulls; run its schedule.",
    no_args_is_help=True,
)


def _result_table(result: QueryResultView) -> Table:
    table = render.table(*result.columns)
    for row in result.rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def hunt(
    query: Annotated[str, typer.Argument(help='KQL or SQL, e.g. "IdentityLogonEvents | take 10".')],
    language: Annotated[
        Literal["kql", "sql"] | None, typer.Option(help="kql or sql (default: guessed).")
    ] = None,
    max_rows: Annotated[int | None, typer.Option("--max-rows", min=1, help="At most this many rows.")] = None,
    act: Annotated[
        str | None, typer.Option(help="Queue this action on the accounts found, e.g. ad.disable_user.")
    ] = None,
    column: Annotated[str | None, typer.Option(help="With --act: the column holding the accounts.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="With --act: why.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="With --act: the same key never queues a second batch.")
    ] = None,
    as_json: JsonOption = False,
    output: OutputOption = None,
) -> None:
    """Run a hunting query (read-only) and print the rows; with --act, act on the accounts found."""
    from clampdown.views import ActOnResultsView, QueryResultView

    if act is not None and column is None:
        fail("--act needs --column: the result column that holds the accounts", 2)
    if (profile := server_profile()) is not None:
        from clampdown.cli.remote import connect

        async def ask() -> QueryResultView | ActOnResultsView:
            async with connect(profile) as api:
                if act is not None and column is not None:
                    return await api.act_on_results(query, language, column, act, reason, idempotency_key)
                return await api.hunt(query, language, max_rows)

        answer = run(ask())
        if isinstance(answer, ActOnResultsView):
            _print_acted(answer, act or "", as_json)
        else:
            _print_result(answer, output_format(output, as_json))
        return
    from clampdown.hunting.query import Language
    from clampdown.hunting.service import ActOnResults, HuntingService

    settings = load()
    chosen = Language(language) if language else None

    async def go() -> QueryResult | ActOnResults:
        async with open_runtime(settings) as rt:
            principal = await caller(rt)
            service = HuntingService.from_runtime(rt)
            if act is not None and column is not None:
                return await service.act_on_results(
                    principal, query, column, act, reason, language=chosen, idempotency_key=idempotency_key
                )
            return await service.query(principal, query, chosen, max_rows)

    outcome = run(go())
    if isinstance(outcome, ActOnResults):
        _print_acted(ActOnResultsView.model_validate(outcome), act or "", as_json)
        return
    _print_result(QueryResultView.model_validate(outcome), output_format(output, as_json))


def _print_acted(acted: ActOnResultsView, action: str, as_json: bool) -> None:
    if as_json:
        render.print_view(acted)
    else:
        render.console.print(
            f"batch {acted.batch_id}: {len(acted.actions)} actions queued "
            f"({action} on {len(acted.targets)} accounts)"
        )


def _print_result(result: QueryResultView, shown: render.Output) -> None:
    if shown == render.Output.JSON:
        render.print_view(result)
        return
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    render.emit(rows, shown, lambda: _result_table(result))
    more = " (cut at the row limit: narrow the query or raise --max-rows)" if result.truncated else ""
    render.errors.print(f"{len(result.rows)} rows in {result.elapsed_ms:.0f} ms{more}")


FileKind = Literal["evtx", "jsonl"]


def ingest_files(paths: list[Path], kind: FileKind, as_json: bool, directory: str | None = None) -> None:
    """Ingest event files into the hunting store as the caller and print one report line per file;
    each event goes to the AD directory its domain controller is in, or to `directory`. Accounts
    IdentityInfo does not know yet are then looked up, and the events joined to them.

    The `ingest` commands share it, and so may plugins that add one (the lab's `ingest lab-day`).
    """
    import asyncio

    from clampdown.hunting.directories import directory_matcher
    from clampdown.hunting.files import read_evtx, read_jsonl
    from clampdown.hunting.identity import refresh_identity_info
    from clampdown.hunting.ingest import ingest_windows
    from clampdown.hunting.service import HuntingService

    settings = load()

    async def go() -> tuple[list[IngestReport], int]:
        async with open_runtime(settings) as rt:
            require_permission(await caller(rt), HUNTING_MANAGE, "ingest events")
            store = HuntingService.from_runtime(rt).store
            matcher = directory_matcher(rt.connectors, directory)
            reports = []
            for path in paths:
                events = read_evtx(path) if kind == "evtx" else read_jsonl(path)
                reports.append(await asyncio.to_thread(ingest_windows, store, events, directories=matcher))
            return reports, await refresh_identity_info(store, rt.connectors, only_unknown=True)

    reports, looked_up = run(go())
    for path, report in zip(paths, reports, strict=True):
        if as_json:
            print(json.dumps({"path": str(path), **report.__dict__}))
        else:
            unplaced = f", {report.no_directory} in no directory" if report.no_directory else ""
            render.console.print(
                f"{path}: {report.read} events read, {report.added} rows added, "
                f"{report.already_stored} already stored, {report.not_kept} not kept{unplaced}"
            )
    if not as_json and looked_up:
        render.console.print(f"IdentityInfo: {looked_up} accounts looked up; their events joined to them")


PathsArg = Annotated[
    list[Path], typer.Argument(exists=True, dir_okay=False, readable=True, help="Files to read.")
]
DirectoryOption = Annotated[
    str | None,
    typer.Option(
        "--directory",
        help="The AD directory ([providers.NAME]) the files' domain controllers belong to (default: "
        "each event's, told from its computer and domain).",
    ),
]


@ingest_app.command("evtx")
def ingest_evtx(paths: PathsArg, directory: DirectoryOption = None, as_json: JsonOption = False) -> None:
    """Ingest Windows Security EVTX files; events already stored are skipped."""
    ingest_files(paths, "evtx", as_json, directory)


@ingest_app.command("jsonl")
def ingest_jsonl(paths: PathsArg, directory: DirectoryOption = None, as_json: JsonOption = False) -> None:
    """Ingest Winlogbeat JSON lines files; events already stored are skipped."""
    ingest_files(paths, "jsonl", as_json, directory)


@ingest_app.command("pull")
def ingest_pull(
    max_pages: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many pages per source.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Pull the Okta System Log and Entra ID sign-ins once, from where the last pull stopped."""
    from clampdown.hunting.pulls import api_sources
    from clampdown.hunting.service import HuntingService

    settings = load()

    async def go() -> list[PullReport]:
        async with open_runtime(settings) as rt:
            require_permission(await caller(rt), HUNTING_MANAGE, "ingest events")
            service = HuntingService.from_runtime(rt)
            sources = api_sources(service.store, dict(rt.connectors), settings.hunting.pull_page_size)
            if not sources:
                raise InvalidInput("no Okta or Entra ID provider is configured: nothing to pull")
            return [await source.pull(max_pages) for source in sources]

    for report in run(go()):
        if as_json:
            print(json.dumps(report.__dict__))
        else:
            render.console.print(
                f"{report.source}: {report.pages} pages, {report.read} events read, {report.added} rows added"
            )


@ingest_app.command("watch")
def ingest_watch() -> None:
    """Pull the APIs, refresh IdentityInfo and run due detection rules until stopped (Ctrl-C); what
    `clampdown serve` does by itself when it runs the embedded worker (SQLite)."""
    import asyncio

    from clampdown.hunting.schedule import run_schedule
    from clampdown.hunting.service import HuntingService

    settings = load()
    logging.getLogger("clampdown").setLevel(logging.INFO)

    async def go() -> None:
        async with open_runtime(settings) as rt:
            require_permission(await caller(rt), HUNTING_MANAGE, "run the hunting schedule")
            service = HuntingService.from_runtime(rt)
            await run_schedule(service, dict(rt.connectors), asyncio.Event())

    run(go())
