"""The web console: server-rendered pages, drawers and dialogs over the same services as the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def console_routers() -> list[APIRouter]:
    """The routers of the console's pages."""
    from clampdown.web import (
        action_center,
        cli_login_page,
        containments_page,
        hunting_page,
        overview_page,
        people_pages,
        session_pages,
        signals_page,
    )

    pages = (session_pages, overview_page, people_pages, action_center, containments_page, hunting_page,
             cli_login_page, signals_page)  # fmt: skip
    return [m.router for m in pages]


def mount_console(app: FastAPI) -> None:
    """Serve the console's pages at / and its assets at /static (nothing from a CDN)."""
    from clampdown.web.access import SignInRequired, sign_in_redirect

    async def to_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return sign_in_redirect(exc)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for router in console_routers():
        app.include_router(router)
