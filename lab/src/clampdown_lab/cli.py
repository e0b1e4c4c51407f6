"""`clampdown lab up|status|down` and `clampdown ingest lab-day`: the local lab for trying Clampdown
without a tenant. `register` is the lab's `clampdown.cli` entry point; the core CLI calls it.

Nothing from `clampdown.cli` is imported at module level: importing that package loads its plugins,
this module among them, so a top-level import would meet this module half-initialised whenever it
is imported first. The commands import what they use when they run, `register` when it is called.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from clampdown.errors import ClampdownError

lab_app = typer.Typer(
    help="The local lab: Samba AD DC, Okta and Graph emulators, demo people.", no_args_is_help=True
)
LabDir = Annotated[Path, typer.Option("--dir", help="Where the lab keeps its state and config.")]
# The same option as clampdown.cli.context.JsonOption, which this module may not import at load time.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


SecondOption = Annotated[
    bool,
    typer.Option(
        "--second",
        help="Also a second directory of each kind (EMEA: AD at 127.0.0.2, a Graph tenant, an Okta org), "
        "as providers emea-ad, emea-entra, emea-okta.",
    ),
]


NextOption = Annotated[
    bool, typer.Option("--next/--no-next", help="End with the command that serves the console next.")
]


@lab_app.command("up")
def lab_up_command(
    lab_dir: LabDir = Path(".lab"), second: SecondOption = False, next_hint: NextOption = True
) -> None:
    """Start everything on loopback, seed the demo people, write DIR/clampdown.toml and DIR/lab.json."""
    import httpx

    from clampdown.cli import render
    from clampdown.cli.context import load
    from clampdown.cli.errors import fail, run
    from clampdown.services.runtime import upgrade_schema
    from clampdown_lab.admin import ensure_lab_admin
    from clampdown_lab.orchestrator import lab_up
    from clampdown_lab.signals import ensure_signal_rule, register_with_okta

    try:
        services = lab_up(lab_dir, second=second)
    except ClampdownError as exc:
        fail(exc.message, 1)
    settings = load(lab_dir / "clampdown.toml", server_side=True)
    run(upgrade_schema(settings))
    admin = run(ensure_lab_admin(settings, lab_dir / "lab.json"))
    okta = next((s for s in services if s.name == "okta"), None)
    if okta is not None:  # the org and Clampdown tell each other (Shared Signals), and a rule acts
        try:
            register_with_okta(okta, settings)
        except httpx.HTTPError as exc:  # e.g. an org started by an older lab, without SSF
            fail(
                f"the lab's Okta org at {okta.url} did not take the Shared Signals registration ({exc}); "
                f"restart the lab: clampdown lab down --dir {lab_dir}, then lab up",
                1,
            )
        run(ensure_signal_rule(settings, admin["username"]))
    for s in services:
        render.console.print(f"{s.name}: {s.url}")
    render.console.print(f"wrote {lab_dir / 'clampdown.toml'} and {lab_dir / 'lab.json'}")
    render.console.print(f"console sign-in: {admin['username']} (password and API token in lab.json)")
    if next_hint:
        render.console.print(f"next: clampdown --config {lab_dir / 'clampdown.toml'} serve")


@lab_app.command("sign-in")
def lab_sign_in_command(lab_dir: LabDir = Path(".lab")) -> None:
    """Where the lab's console is and how to sign in to it and use the CLI (the lab's own secrets)."""
    import json

    from clampdown.cli import render
    from clampdown.cli.context import load
    from clampdown.cli.errors import fail

    try:
        admin = json.loads((lab_dir / "lab.json").read_text(encoding="utf-8"))["admin"]
    except (OSError, ValueError, KeyError):
        fail(f"no lab in {lab_dir}: start it with `clampdown lab up --dir {lab_dir}`", 1)
    settings = load(lab_dir / "clampdown.toml")
    server = settings.server
    config = lab_dir / "clampdown.toml"
    render.console.print(f"console: http://{server.host}:{server.port}", soft_wrap=True)
    render.console.print(f"sign in as {admin['username']} with password {admin['password']}", soft_wrap=True)
    render.console.print(
        f"CLI: export CLAMPDOWN_CONFIG={config} CLAMPDOWN_TOKEN={admin['token']}", soft_wrap=True
    )
    if "okta" in settings.ssf.receivers:  # lab up wired Shared Signals with the lab's Okta org
        render.console.print(
            f"Shared Signals: clampdown lab signal <login> --dir {lab_dir} (the Okta org reports a "
            "compromised password; the rule risc-credential-compromise contains the person)",
            soft_wrap=True,
        )


@lab_app.command("status")
def lab_status_command(lab_dir: LabDir = Path(".lab")) -> None:
    """Whether each lab part runs, and where; exits 1 when any part is stopped."""
    from clampdown.cli import render
    from clampdown.cli.errors import fail
    from clampdown_lab.orchestrator import lab_status, lab_stopped

    for name, line in lab_status(lab_dir).items():
        render.console.print(f"{name}: {line}")
    stopped = lab_stopped(lab_dir)
    if stopped:
        fail(f"stopped: {', '.join(stopped)} (start the lab with `clampdown lab up --dir {lab_dir}`)", 1)


@lab_app.command("signal")
def lab_signal_command(
    login: Annotated[str, typer.Argument(help="The Okta login (UPN) of the person, e.g. a demo person's")],
    event: Annotated[
        str, typer.Option(help="credential-compromise, session-revoked or credential-change")
    ] = "credential-compromise",
    reason: Annotated[str, typer.Option(help="The reason the org gives")] = "found in a breach corpus",
    lab_dir: LabDir = Path(".lab"),
) -> None:
    """Make the lab's Okta org transmit a Shared Signals event about a person to Clampdown: a RISC
    credential-compromise arms the lab's rule risc-credential-compromise, which contains them within
    a minute of `clampdown serve` receiving it (its console shows both directions under Settings)."""
    import json

    import httpx

    from clampdown.cli import render
    from clampdown.cli.errors import fail

    try:
        services = json.loads((lab_dir / "lab.json").read_text(encoding="utf-8"))["services"]
        okta_url = services["okta"]["url"]
    except (OSError, ValueError, KeyError):
        fail(f"no lab in {lab_dir}: start it with `clampdown lab up --dir {lab_dir}`", 1)
    try:
        answer = httpx.post(f"{okta_url}/_emulator/ssf/transmit", timeout=10,
                            json={"login": login, "event": event, "reason": reason})  # fmt: skip
    except httpx.HTTPError as exc:
        fail(f"the lab's Okta org at {okta_url} did not answer ({exc}): is the lab up?", 1)
    if answer.status_code != 200:
        fail(f"the org did not transmit: {answer.json().get('error', answer.text)}", 1)
    render.console.print(f"the org transmitted {event} about {login} (jti {answer.json()['jti']})")


@lab_app.command("down")
def lab_down_command(lab_dir: LabDir = Path(".lab")) -> None:
    """Stop every lab part started under DIR."""
    from clampdown.cli import render
    from clampdown_lab.orchestrator import lab_down

    lab_down(lab_dir)
    render.console.print("lab stopped")


def ingest_lab_day(
    day: Annotated[
        datetime | None, typer.Option(formats=["%Y-%m-%d"], help="The day (UTC), default today.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest a lab day of DC Security events for the demo people (a brute force, a spray, ...)."""
    from clampdown.cli.hunting import ingest_files
    from clampdown_lab.lab_day import write_lab_day

    with tempfile.TemporaryDirectory() as folder:
        path = write_lab_day(Path(folder) / "lab-day.ndjson", day.replace(tzinfo=UTC) if day else None)
        ingest_files([path], "jsonl", as_json)


def register(app: typer.Typer) -> None:
    """Add the `lab` group and `ingest lab-day` to the `clampdown` command."""
    from clampdown.cli.hunting import ingest_app

    app.add_typer(lab_app, name="lab")
    ingest_app.command("lab-day")(ingest_lab_day)
