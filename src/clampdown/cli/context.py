"""What every command shares: the chosen config file or server, the caller's token, common options.

Nothing heavy is imported here: `clampdown --help` loads this module, and so does every command.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clampdown.cli.errors import fail
from clampdown.cli.render import Output
from clampdown.errors import ClampdownError

if TYPE_CHECKING:
    from clampdown.auth.principal import Principal
    from clampdown.cli.profiles import SavedProfile
    from clampdown.config import Settings
    from clampdown.services.runtime import Runtime

# Not CLAMPDOWN_SERVER: the configuration reads that one as its [server] section.
SERVER_VARIABLE = "CLAMPDOWN_URL"
PROFILE_VARIABLE = "CLAMPDOWN_PROFILE"
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
OutputOption = Annotated[
    Output | None,
    typer.Option("--output", "-o", help="table (the default), json, csv or yaml.", show_default=False),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only the ids, one per line.")]


def output_format(output: Output | None, as_json: bool) -> Output:
    """--output, with --json as its short form for json."""
    if as_json and output not in (None, Output.JSON):
        fail(f"--json and --output {output} ask for two formats: give one", 2)
    return Output.JSON if as_json else output or Output.TABLE


class _State:
    config: Path | None = None
    token: str | None = None
    server: str | None = None
    ca_file: Path | None = None
    profile: str | None = None


state = _State()


def token() -> str | None:
    """--token, else $CLAMPDOWN_TOKEN, else the token of the profile in use."""
    given = state.token or os.environ.get("CLAMPDOWN_TOKEN")
    if given:
        return given
    chosen = profile() if server() else None
    return chosen.token if chosen else None


def _server_given() -> str:
    """--server, else $CLAMPDOWN_URL; empty when neither names a server."""
    return state.server or os.environ.get(SERVER_VARIABLE, "").strip()


def server() -> str | None:
    """The running Clampdown the command talks to over its API: --server, else $CLAMPDOWN_URL, else
    the profile's (see `profile`); None: the command opens the database itself."""
    given = _server_given()
    if given:
        return given
    chosen = profile()
    return chosen.url if chosen else None


def _local_config_given() -> bool:
    return bool(state.config or os.environ.get("CLAMPDOWN_CONFIG") or Path("clampdown.toml").exists())


def profile() -> SavedProfile | None:
    """The `clampdown login` profile in use: --profile or $CLAMPDOWN_PROFILE by name; else the current
    one, unless a configuration file is at hand (--config, $CLAMPDOWN_CONFIG, ./clampdown.toml: the
    administrator's direct database mode on the server). None when no server was given that way."""
    from clampdown.cli import profiles

    named = state.profile or os.environ.get(PROFILE_VARIABLE, "").strip()
    try:
        if not named:
            if _server_given() or _local_config_given():
                return None
            named = profiles.current() or ""
            if not named:
                return None
        found = profiles.load(named)
    except ClampdownError as exc:
        fail(exc.message, 2)
    if found is None:
        fail(f"no profile '{named}': log in first with `clampdown login --server URL --profile {named}`", 2)
    return found


def refuse_server(server_side: bool = False) -> None:
    """A command that opens the database itself refuses a server rather than ignoring it silently.

    `--server` is refused by every such command. $CLAMPDOWN_URL, set once for a shell, is refused
    by the analyst's commands (they will speak the API one day) but not by those that run where the
    database is by nature (`serve`, `worker`, `db`, `config`, `users`, `tokens`, `roles`, `doctor`).
    """
    if server() is None:
        return
    if server_side and state.server is None:
        return
    chosen = None if _server_given() else profile()
    where = "--server" if state.server else f"the profile {chosen.name}" if chosen else f"${SERVER_VARIABLE}"
    fail(
        f"this command does not work over the API yet (catalog, act, actions, approvals, "
        f"contain, release, containments list|show, workers, hunt and users search do): it opens the "
        f"database itself; run it without {where}, where the configuration file is",
        2,
    )


def load(config: Path | None = None, *, server_side: bool = False) -> Settings:
    """The settings, or exit 4 with every problem named (exit 2 when a server was given instead)."""
    from clampdown.config import load_settings

    refuse_server(server_side)
    try:
        settings = load_settings(config or state.config)
    except ClampdownError as exc:
        fail(exc.message, 4)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def no_credentials() -> ClampdownError:
    """The error for a command run without a token, locally or over the API (exit 9)."""
    return ClampdownError(
        "no credentials: pass --token or set CLAMPDOWN_TOKEN "
        "(an administrator creates one with `clampdown tokens create --user NAME`)",
        code="unauthenticated",
    )


@asynccontextmanager
async def open_runtime(settings: Settings, *, check_schema: bool = True) -> AsyncIterator[Runtime]:
    """services.runtime.open_runtime, imported only by a command that opens the database."""
    from clampdown.services.runtime import open_runtime as opened
    from clampdown.views.actions import use_console_settings

    use_console_settings(settings.console)  # every --json links incidents as the server does
    async with opened(settings, check_schema=check_schema) as rt:
        yield rt


async def caller(rt: Runtime) -> Principal:
    """The principal behind --token / $CLAMPDOWN_TOKEN; RBAC applies to the CLI as to the API."""
    given = token()
    if not given:
        raise no_credentials()
    return await rt.auth.authenticate_token(given, "cli")
