"""`clampdown ssf`: Clampdown as a Shared Signals transmitter: its signing key made, its streams listed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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


def _delivery(method: str) -> str:
    return {"urn:ietf:rfc:8935": "push", "urn:ietf:rfc:8936": "poll"}.get(method, method)


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
    settings = load()

    async def go() -> list[dict[str, Any]]:
        from clampdown.signals.streams import SignalStreams

        async with open_runtime(settings) as rt:
            service = SignalStreams.from_runtime(rt)
            found = await service.all_streams(await caller(rt))
            return [
                {"stream_id": s.stream_id, "owner": s.owner, "delivery": _delivery(s.delivery_method),
                 "status": s.status, "reason": s.status_reason, "endpoint_url": s.endpoint_url,
                 "audience": list(s.audience), "events": s.events_delivered,
                 "created_at": s.created_at.isoformat(),
                 "verified_at": s.verified_at.isoformat() if s.verified_at else None}
                for s in found
            ]  # fmt: skip

    rows = run(go())

    def table() -> Table:
        shown = render.table("stream", "owner", "delivery", "status", "endpoint", "events")
        for r in rows:
            events = ", ".join(str(e).rsplit("/", 1)[-1] for e in r["events"])
            status = f"{r['status']} ({r['reason']})" if r["reason"] else str(r["status"])
            shown.add_row(str(r["stream_id"]), str(r["owner"]), str(r["delivery"]), status,
                          str(r["endpoint_url"] or "-"), events or "-")  # fmt: skip
        return shown

    render.emit(rows, output_format(output, as_json), table, quiet=quiet, key="stream_id")
