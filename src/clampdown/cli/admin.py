"""`clampdown users|tokens|roles`: administration, run where the database is reachable.

These commands act with the database's own authority (whoever holds the database credentials
administers Clampdown), which is how the first administrator and their first token are made.
"""

from __future__ import annotations

import getpass
import socket
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from clampdown.auth.principal import scope_words
from clampdown.cli import render
from clampdown.cli.context import JsonOption, OutputOption, QuietOption, load, open_runtime, output_format
from clampdown.cli.errors import run
from clampdown.errors import InvalidInput

if TYPE_CHECKING:
    from clampdown.auth.service import Actor, IssuedToken
    from clampdown.views import TokenView

users_app = typer.Typer(
    help="Clampdown's own users (analysts, responders, readers); `search` finds directory people.",
    no_args_is_help=True,
)
tokens_app = typer.Typer(
    help="API tokens: shown once, stored hashed, expiring, revocable.", no_args_is_help=True
)
roles_app = typer.Typer(help="Custom roles made of permissions.", no_args_is_help=True)


DirectoryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--directory",
        help="Limit the user's roles to this directory (a [providers.NAME] section); repeat for more.",
    ),
]


def administrator() -> Actor:
    """Who runs the command, for the audit trail: the operating system user, on this host."""
    from clampdown.auth.service import Actor

    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        name = "unknown"
    return Actor(f"database administrator {name}", "cli", socket.gethostname())


def parse_lifetime(value: str) -> timedelta | None:
    """'90d', '12h', '30m' or 'never'."""
    if value == "never":
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit() and int(value[:-1]) > 0:
        return timedelta(seconds=int(value[:-1]) * units[value[-1]])
    raise InvalidInput(f"--expires-in: '{value}' is not like 90d, 12h, 30m or never")


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[list[str], typer.Option("--role", help="Built-in or custom role; repeat for more.")],
    display_name: Annotated[str | None, typer.Option()] = None,
    password_stdin: Annotated[
        bool, typer.Option(help="Read a console password from standard input.")
    ] = False,
    directory: DirectoryOption = None,
) -> None:
    """Create a local user."""
    settings = load(server_side=True)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    scope = frozenset(directory) if directory else None

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await rt.auth.create_user(
                username, frozenset(role), password, display_name, scope=scope, by=administrator()
            )

    run(go())
    render.console.print(
        f"user {username} created with roles: {', '.join(sorted(role))}, in {scope_words(scope)}",
        soft_wrap=True,
    )


@users_app.command("set-scope")
def users_set_scope(
    username: str,
    directory: DirectoryOption = None,
    every_directory: Annotated[
        bool, typer.Option("--all", help="Lift the limit: the user's roles hold in every directory.")
    ] = False,
) -> None:
    """Limit a user's roles to some directories (--directory, repeatable), or lift the limit (--all)."""
    if bool(directory) == every_directory:
        raise typer.BadParameter("give --directory (one or more) or --all")
    settings = load(server_side=True)
    scope = frozenset(directory) if directory else None

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await rt.auth.set_user_scope(username, scope, by=administrator())

    run(go())
    render.console.print(f"user {username}'s roles now hold in {scope_words(scope)}", soft_wrap=True)


@users_app.command("set-roles")
def users_set_roles(
    username: str,
    role: Annotated[list[str], typer.Option("--role", help="Built-in or custom role; repeat for more.")],
) -> None:
    """Replace a local user's roles (single sign-on users' roles follow sso.role_mapping)."""
    settings = load(server_side=True)

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await rt.auth.set_user_roles(username, frozenset(role), by=administrator())

    run(go())
    render.console.print(f"user {username} now has roles: {', '.join(sorted(role))}")


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="Whose token.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    expires_in: Annotated[str, typer.Option(help="90d, 12h, 30m or never.")] = "90d",
    service: Annotated[
        bool,
        typer.Option(
            "--service",
            help="A service token: for a single sign-on user it keeps working without their console session.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Create an API token. It is printed once; only its hash is stored. A single sign-on user's
    token works while they have a console session, unless it is made with --service."""
    from clampdown.views import IssuedTokenView

    settings = load(server_side=True)

    async def go() -> IssuedToken:
        lifetime = parse_lifetime(expires_in)
        async with open_runtime(settings) as rt:
            return await rt.auth.create_token(user, name, lifetime, service=service, by=administrator())

    issued = run(go())
    if as_json:
        render.print_view(IssuedTokenView.model_validate(issued))
    else:
        print(issued.token)
        expires = issued.expires_at.isoformat() if issued.expires_at else "never"
        render.errors.print(f"token {issued.id} for {user}, expires {expires}: it is shown only now")


@tokens_app.command("list")
def tokens_list(
    user: Annotated[str | None, typer.Option("--user")] = None,
    as_json: JsonOption = False,
    output: OutputOption = None,
    quiet: QuietOption = False,
) -> None:
    """Tokens with their prefix, owner and dates; never the token itself."""
    from clampdown.views import TokenView

    settings = load(server_side=True)

    async def go() -> list[TokenView]:
        async with open_runtime(settings) as rt:
            return [TokenView.model_validate(t) for t in await rt.auth.list_tokens(user)]

    tokens = run(go())
    as_rows = [t.model_dump(mode="json") for t in tokens]
    render.emit(tokens, output_format(output, as_json), lambda: render.rows_table(as_rows), quiet=quiet)


@tokens_app.command("revoke")
def tokens_revoke(token_id: int) -> None:
    """Revoke a token at once."""
    settings = load(server_side=True)

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await rt.auth.revoke_token(token_id, by=administrator())

    run(go())
    render.console.print(f"token {token_id} revoked")


@roles_app.command("create")
def roles_create(
    name: str,
    permission: Annotated[list[str], typer.Option("--permission", help="e.g. response:manage; repeat.")],
    description: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create or replace a custom role."""
    settings = load(server_side=True)

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await rt.auth.define_role(name, frozenset(permission), description, by=administrator())

    run(go())
    render.console.print(f"role {name}: {', '.join(sorted(permission))}")


@roles_app.command("delete")
def roles_delete(name: str) -> None:
    """Delete a custom role that no user holds."""
    settings = load(server_side=True)

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await rt.auth.delete_role(name, by=administrator())

    run(go())
    render.console.print(f"role {name} deleted")
