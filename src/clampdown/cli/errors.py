"""Turning errors into one clear line on stderr and a non-zero exit code; never a traceback."""

from __future__ import annotations

import logging
import os
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer

from clampdown.cli.render import errors
from clampdown.errors import (
    ClampdownError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StoreUnavailable,
)

T = TypeVar("T")

EXIT_CODES: list[tuple[type[ClampdownError], int]] = [
    (InvalidInput, 2),
    (NotFound, 3),
    (ConfigError, 4),
    (StoreUnavailable, 5),
    (Conflict, 6),
    (Forbidden, 7),
]
EXIT_UNAUTHENTICATED = 9
EXIT_ACTION_FAILED = 8


def fail(message: str, code: int = 1) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; ClampdownError becomes a one-line message and its exit code."""
    import asyncio

    try:
        return asyncio.run(coro)
    except ClampdownError as exc:
        code = next((c for cls, c in EXIT_CODES if isinstance(exc, cls)), 1)
        if exc.code == "unauthenticated":
            code = EXIT_UNAUTHENTICATED
        fail(exc.message.replace("[", "\\["), code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except typer.Exit:
        raise
    except Exception as exc:
        if os.environ.get("CLAMPDOWN_DEBUG"):
            raise
        logging.getLogger("clampdown").debug("internal error", exc_info=True)
        fail(f"internal error: {type(exc).__name__}: {exc} (set CLAMPDOWN_DEBUG=1 for details)")
