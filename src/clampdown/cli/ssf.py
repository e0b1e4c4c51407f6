"""`clampdown ssf`: Clampdown as a Shared Signals transmitter: its signing key made, its streams listed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from clampdown.cli import render
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

ssf_app = typer.Typer(help="Shared Signals: Clampdown as a transmitter (SSF 1.0).", no_args_is_help=True)


@ssf_app.command("keygen")
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the new private key (PEM, mode 0600).")],
) -> None:
    """Make an EC P-256 signing key for [ssf.transmitter] signing_key_file; prints its kid."""
    from clampdown.secevents import generate_key

    if path.exists():
        fail(
            f"{path} exists: a signing key is never overwritten (move it to previous_key_files to rotate)", 2
        )
    try:
        key = generate_key(str(path))
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}", 1)
    print(key.kid)


@ssf_app.command("streams")
def streams(as_json: JsonOption = False, output: OutputOption = None, quiet: QuietOption = False) -> None:
    """Every stream of the transmitter: declared ones (owner config:NAME) and receivers'. Needs a token
    with settings:manage."""
    from clampdown.views.signals import StreamView

    settings = load()

    async def go() -> list[StreamView]:
        from clampdown.signals.streams import SignalStreams

        async with open_runtime(settings) as rt:
            service = SignalStreams.from_runtime(rt)
            return [StreamView.model_validate(s) for s in await service.all_streams(await caller(rt))]

    views = run(go())

    def table() -> Table:
        shown = render.table("stream", "owner", "delivery", "status", "endpoint", "events")
        for v in views:
            events = ", ".join(e.rsplit("/", 1)[-1] for e in v.events_delivered)
            status = f"{v.status} ({v.status_reason})" if v.status_reason else v.status
            shown.add_row(v.stream_id, v.owner, v.delivery, status, v.endpoint_url or "-", events or "-")
        return shown

    render.emit(views, output_format(output, as_json), table, quiet=quiet, key="stream_id")
