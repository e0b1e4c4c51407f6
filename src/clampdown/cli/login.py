"""`clampdown login`, `logout`, `whoami` and `profiles`: an analyst's CLI talks to a server with a
saved profile, and needs no database credentials.

`login` signs in with a local password (or takes an API token from standard input), asks the server
for a token of the person's own (POST /api/v1/me/tokens, from that console session, which then ends)
and saves it in a profile (clampdown.cli.profiles); the profile becomes the current one. Every
command that works over the API then uses it when no configuration file is at hand. `logout`
revokes the token on the server and forgets it.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clampdown.cli import render
from clampdown.cli.context import JsonOption, OutputOption, QuietOption, output_format, state
from clampdown.cli.errors import fail, run
from clampdown.errors import ClampdownError, InvalidInput

if TYPE_CHECKING:
    from clampdown.cli.profiles import SavedProfile

ProfileOption = Annotated[
    str | None,
    typer.Option("--profile", "-p", help="The profile's name (default: the current one, else 'default')."),
]


def _profile_name(given: str | None) -> str:
    from clampdown.cli import profiles

    name = given or state.profile or profiles.current() or profiles.DEFAULT_PROFILE
    try:
        return profiles.check_name(name)
    except InvalidInput as exc:
        fail(exc.message, 2)


async def _mint(url: str, ca_file: Path | None, username: str, password: str, days: int) -> tuple[str, Any]:
    """A token of the person's own, made by the server after a password sign-in."""
    from clampdown.cli.remote import ServerProfile, connect

    async with connect(ServerProfile(url=url, ca_file=ca_file)) as api:
        return await api.own_token(username, password, f"cli on {socket.gethostname()}"[:200], days)


def _through_browser(url: str, timeout: float) -> str:
    """Sign in in the browser (a password or single sign-on, as the console does): a loopback
    listener of this process receives the new token, sealed to a one-time key only it holds."""
    import secrets
    import threading
    import webbrowser
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlencode, urlsplit

    from clampdown.sealing import CLI_LOGIN_CONTEXT, new_sealing_key, open_sealed

    key, state = new_sealing_key(), secrets.token_urlsafe(24)
    received: dict[str, str] = {}
    done = threading.Event()

    class Callback(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(asked.query).items()}
            good = asked.path == "/callback" and secrets.compare_digest(query.get("state", ""), state)
            if good and "sealed" in query:
                received["sealed"] = query["sealed"]
                done.set()
            self.send_response(200 if good else 400)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            text = (
                "The Clampdown CLI is signed in: you may close this tab." if good else "Not for this sign-in."
            )
            self.wfile.write(f"<!doctype html><title>Clampdown</title><p>{text}</p>".encode())

        def log_message(self, format: str, *args: Any) -> None:  # nothing on the terminal
            return

    listener = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        params = {"port": listener.server_address[1], "key": key.public, "state": state,
                  "host": socket.gethostname()[:64]}  # fmt: skip
        page = f"{url}/cli/login?{urlencode(params)}"
        render.errors.print(f"sign in in your browser: {page}", highlight=False, soft_wrap=True)
        if sys.stdin.isatty():
            webbrowser.open(page)
        if not done.wait(timeout):
            fail(f"no sign-in came back within {timeout:.0f} s: run `clampdown login --browser` again", 9)
    finally:
        listener.shutdown()
        listener.server_close()
    try:
        return open_sealed(key.private, received["sealed"], CLI_LOGIN_CONTEXT)
    except InvalidInput:
        fail("the browser handed back a token sealed for another sign-in", 9)


async def _me(url: str, ca_file: Path | None, token: str) -> dict[str, Any]:
    from clampdown.cli.remote import ServerProfile, connect

    async with connect(ServerProfile(url=url, token=token, ca_file=ca_file)) as api:
        return await api.me()


def login(
    server: Annotated[
        str | None,
        typer.Option("--server", help="The server's URL (default: the profile's, when it has one)."),
    ] = None,
    profile: ProfileOption = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="Who signs in (asked if not given).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    token_stdin: Annotated[
        bool,
        typer.Option(
            "--token-stdin", help="Read an API token (from `clampdown tokens create`) instead of a password."
        ),
    ] = False,
    browser: Annotated[
        bool,
        typer.Option(
            "--browser", help="Sign in in the browser: single sign-on or a password, as the console."
        ),
    ] = False,
    ca_file: Annotated[
        Path | None, typer.Option("--ca-file", help="A CA file to trust for this server.")
    ] = None,
    expires_in_days: Annotated[
        int,
        typer.Option("--expires-in-days", min=1, max=365, help="The new token ends after this many days."),
    ] = 30,
) -> None:
    """Sign in to a server and save it as the current profile; commands then talk to it over its API.

    With a password (asked, or --password-stdin) the server makes a token of your own, kept in a file
    only you can read; or give one with --token-stdin. No database credentials are needed here."""
    from clampdown.cli import profiles
    from clampdown.cli.remote import ServerProfile

    name = _profile_name(profile)
    known = profiles.load(name)
    url = server or state.server or (known.url if known else None)
    if not url:
        fail(
            "--server: give the server's URL, e.g. clampdown login --server https://clampdown.example:8443", 2
        )
    ca = ca_file or state.ca_file or (known.ca_file if known else None)
    checked = ServerProfile(url=url.rstrip("/"), ca_file=ca)
    if not checked.url.startswith(("https://", "http://")):
        fail(f"--server: '{url}' is not a URL like https://clampdown.example:8443", 2)
    if token_stdin:
        token, expires = sys.stdin.readline().strip(), None
        if not token:
            fail("--token-stdin: standard input held no token", 2)
    elif browser:
        token, expires = _through_browser(checked.url, 300.0), None
    else:
        who = username or (known.username if known else None) or typer.prompt("username")
        secret = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("password: ")
        token, expires = run(_mint(checked.url, ca, who, secret, expires_in_days))
    me = run(_me(checked.url, ca, token))
    saved = profiles.SavedProfile(name, checked.url, ca, str(me["username"]), expires, token)
    profiles.save(saved)
    until = f", token until {expires}" if expires else ""
    render.console.print(
        f"logged in to {checked.url} as {me['username']} (profile {name}{until})", soft_wrap=True
    )


def logout(profile: ProfileOption = None) -> None:
    """Revoke the profile's token on the server and forget it here (the profile's server stays)."""
    from clampdown.cli import profiles
    from clampdown.cli.remote import ServerProfile, connect

    name = _profile_name(profile)
    saved = profiles.load(name)
    if saved is None or not saved.token:
        render.console.print(f"not logged in (profile {name})")
        return

    async def revoke(found: SavedProfile) -> None:
        async with connect(ServerProfile(url=found.url, token=found.token, ca_file=found.ca_file)) as api:
            await api.revoke_own_token()

    note = "token revoked"
    try:
        asyncio.run(revoke(saved))
    except ClampdownError as exc:
        if exc.code != "unauthenticated":  # expired or revoked already: nothing left to revoke
            profiles.forget_token(name)
            fail(f"forgot the token here, but could not revoke it on {saved.url}: {exc.message}", 5)
        note = "the token had already ended"
    profiles.forget_token(name)
    render.console.print(f"logged out of {saved.url} (profile {name}; {note})", soft_wrap=True)


def whoami(as_json: JsonOption = False) -> None:
    """Who the server takes you for: the user, roles, directories, and which server and profile."""
    from clampdown.cli.actions import server_profile
    from clampdown.cli.context import profile
    from clampdown.cli.remote import connect

    target = server_profile()
    if target is None:
        fail("whoami asks a server: log in with `clampdown login --server URL`, or give --server", 2)

    async def ask() -> dict[str, Any]:
        async with connect(target) as api:
            return await api.me()

    me = run(ask())
    chosen = profile()
    shown = {
        "username": me["username"],
        "roles": me["roles"],
        "directories": me.get("directories"),
        "server": target.url,
        "profile": chosen.name if chosen else None,
    }
    if as_json:
        render.print_json(shown)
        return
    if shown["directories"] is None:
        shown["directories"] = "every directory"
    for key, value in shown.items():
        text = ", ".join(value) if isinstance(value, list) else value
        render.console.print(f"{key}: {text if text is not None else '-'}", soft_wrap=True)


def profiles_command(
    as_json: JsonOption = False, output: OutputOption = None, quiet: QuietOption = False
) -> None:
    """The saved profiles: their servers, who logged in, and which is current."""
    from clampdown.cli import profiles

    current = profiles.current()
    rows = []
    for name in profiles.names():
        found = profiles.load(name)
        if found is None:
            continue
        rows.append(
            {
                "name": name,
                "current": name == current,
                "server": found.url,
                "username": found.username,
                "logged_in": bool(found.token),
                "expires_at": found.expires_at,
            }
        )
    shown = output_format(output, as_json)
    if shown != render.Output.TABLE or quiet:
        render.emit(rows, shown, render.table, quiet=quiet, key="name")
        return
    if not rows:
        render.console.print("no profiles: `clampdown login --server URL` makes one")
    for row in rows:
        mark = "*" if row["current"] else " "
        state_text = f"as {row['username']}" if row["logged_in"] else "logged out"
        render.console.print(f"{mark} {row['name']}: {row['server']} {state_text}", soft_wrap=True)
