"""`clampdown login --browser`: the page that lets a CLI on this person's machine act as them.

The CLI opens /cli/login with the port of a loopback listener of its own, a one-time X25519 public
key and a state. Signed in (a password or single sign-on, through the usual sign-in page), the
person sees who asks and confirms; the page then has the API make a token of theirs sealed to that
key (POST /api/v1/me/tokens/sealed) and sends the browser to http://127.0.0.1:PORT/callback with the
sealed token and the state. Only the CLI holding the private half can open it.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from clampdown.errors import InvalidInput
from clampdown.web.access import SignInRequired, viewer
from clampdown.web.templating import render, render_problem

router = APIRouter(include_in_schema=False)
_KEY = re.compile(r"[A-Za-z0-9_-]{43}")
_STATE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_HOST = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@router.get("/cli/login", response_class=HTMLResponse)
async def cli_login_page(
    request: Request,
    port: Annotated[int, Query(ge=1024, le=65535)],
    key: Annotated[str, Query(max_length=43)],
    state: Annotated[str, Query(max_length=64)],
    host: Annotated[str, Query(max_length=64)] = "this machine",
) -> HTMLResponse:
    """Confirm that the CLI waiting on 127.0.0.1:`port` may act as the signed-in person."""
    try:
        who = await viewer(request)
    except SignInRequired:
        raise SignInRequired(f"{request.url.path}?{request.url.query}") from None
    for name, value, shape in (("key", key, _KEY), ("state", state, _STATE)):
        if not shape.fullmatch(value):
            return render_problem(request, who, InvalidInput(f"{name}: not what `clampdown login` sends"))
    machine = host if _HOST.fullmatch(host) else "this machine"
    return render(request, "cli_login.html", who, port=port, key=key, state=state, machine=machine)
