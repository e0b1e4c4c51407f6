"""The `clampdown` command: parses, calls services, prints. Each group lives in its own module.

Other distributions add commands through the `clampdown.cli` entry-point group: each entry point
is a callable taking the root typer app (the lab's `clampdown lab ...` and `ingest lab-day`).

Starting must be quick (`clampdown --help` in a blink): the command modules import typer, rich and
the light floors only (errors, model, catalog); each command imports the services, the database,
the connectors, DuckDB or httpx when it runs. tests/cli/test_startup.py holds them to it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer

from clampdown.cli.actions import act, actions_app, catalog_command
from clampdown.cli.admin import roles_app, tokens_app, users_app
from clampdown.cli.containments import containments_app
from clampdown.cli.context import state
from clampdown.cli.doctor import doctor_app
from clampdown.cli.guardrails import approve, audit_app, contain, pending_approvals, reject, release
from clampdown.cli.hunting import hunt, ingest_app
from clampdown.cli.login import login, logout, profiles_command, whoami
from clampdown.cli.operations import config_app, db_app, serve, worker
from clampdown.cli.people import users_search
from clampdown.cli.ssf import ssf_app
from clampdown.cli.workers import workers

EPILOG = (
    "Exit codes: 0 done; 1 other error; 2 bad input; 3 not found; 4 configuration error; "
    "5 database or server unreachable; 6 conflict; 7 not permitted; 8 an awaited action failed; "
    "9 no or bad credentials; 130 interrupted.\n\n"
    "Listings take --output table|json|csv|yaml and --quiet (ids only). Shell completion: "
    "clampdown --install-completion (bash, zsh, fish, PowerShell)."
)
app = typer.Typer(
    help="Clampdown: contain a compromised identity in AD, Entra ID and Okta.",
    epilog=EPILOG,
    no_args_is_help=True,
)


def _print_version(value: bool) -> None:
    if value:
        from clampdown import __version__

        print(f"clampdown {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Config file (else $CLAMPDOWN_CONFIG, ./clampdown.toml)."),
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="API token (else $CLAMPDOWN_TOKEN).", show_default=False)
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="A running Clampdown to ask over its REST API instead of opening the database "
            "(else $CLAMPDOWN_URL): catalog, actions list|show, act on one user, contain and release.",
            show_default=False,
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option("--ca-file", help="With --server: a CA file to trust (else $CLAMPDOWN_CA_FILE)."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="A server saved by `clampdown login` (else $CLAMPDOWN_PROFILE, else the current one when "
            "no config file is at hand).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    state.config = config
    state.token = token
    state.server = server
    state.ca_file = ca_file
    state.profile = profile


app.command()(login)
app.command()(logout)
app.command()(whoami)
app.command("profiles")(profiles_command)
app.command()(act)
app.command("catalog")(catalog_command)
app.command()(worker)
app.command()(workers)
app.command()(serve)
app.command()(hunt)
app.add_typer(ingest_app, name="ingest")
app.add_typer(actions_app, name="actions")
app.add_typer(containments_app, name="containments")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
users_app.command("search")(users_search)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(roles_app, name="roles")
app.add_typer(doctor_app, name="doctor")
app.add_typer(audit_app, name="audit")
app.add_typer(ssf_app, name="ssf")
app.command()(contain)
app.command()(release)
actions_app.command("approve")(approve)
actions_app.command("reject")(reject)
actions_app.command("pending")(pending_approvals)


PLUGIN_GROUP = "clampdown.cli"


def load_plugins(root: typer.Typer, group: str = PLUGIN_GROUP) -> list[str]:
    """Call every entry point of `group` with the root app; return the names that registered.

    A plugin that fails to import or register is reported on stderr and skipped, so a broken or
    half-removed extension never takes the core command down with it.
    """
    loaded: list[str] = []
    for entry in entry_points(group=group):
        try:
            register: Callable[[typer.Typer], None] = entry.load()
            register(root)
        except Exception as exc:
            print(
                f"clampdown: plugin {entry.name!r} ({entry.value}) not loaded: {type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            continue
        loaded.append(entry.name)
    return loaded


load_plugins(app)
