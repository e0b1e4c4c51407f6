"""What every command shares: the chosen config file, the caller's token, common options."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Annotated

import typer

from clampdown.auth.principal import Principal
from clampdown.cli.errors import fail
from clampdown.config import Settings, load_settings
from clampdown.errors import ClampdownError
from clampdown.services.runtime import Runtime

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class _State:
    config: Path | None = None
    token: str | None = None


state = _State()


def load(config: Path | None = None) -> Settings:
    """The settings, or exit 4 with every problem named."""
    try:
        settings = load_settings(config or state.config)
    except ClampdownError as exc:
        fail(exc.message, 4)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


async def caller(rt: Runtime) -> Principal:
    """The principal behind --token / $CLAMPDOWN_TOKEN; RBAC applies to the CLI as to the API."""
    token = state.token or os.environ.get("CLAMPDOWN_TOKEN")
    if not token:
        from clampdown.auth.service import Unauthenticated

        raise Unauthenticated(
            "no credentials: pass --token or set CLAMPDOWN_TOKEN "
            "(an administrator creates one with `clampdown tokens create --user NAME`)"
        )
    return await rt.auth.authenticate_token(token, "cli")
