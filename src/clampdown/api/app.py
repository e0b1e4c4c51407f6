"""The FastAPI application that `clampdown serve` runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from clampdown import __version__, catalog
from clampdown.api import actions, guardrails, hunting, metrics, people, session, sso
from clampdown.api.errors import install_error_handlers
from clampdown.audit.webhooks import WebhookDispatcher
from clampdown.auth.oidc import OidcClient
from clampdown.config import Settings
from clampdown.errors import ClampdownError, ConfigError
from clampdown.hunting.schedule import start_schedule as start_hunting_schedule
from clampdown.services.runtime import Runtime, open_runtime, ping_database
from clampdown.store.database import is_sqlite
from clampdown.web import mount_console

log = logging.getLogger(__name__)


def embedded_worker_enabled(settings: Settings) -> bool:
    """SQLite: one worker inside the server. PostgreSQL: separate `clampdown worker` processes."""
    if settings.server.embedded_worker is not None:
        return settings.server.embedded_worker
    return is_sqlite(settings.database.url)


def oidc_client(settings: Settings) -> OidcClient | None:
    """The single sign-on client when [sso] is configured; it needs server.session_secret."""
    if settings.sso is None:
        return None
    if settings.server.session_secret is None:
        raise ConfigError(
            "sso needs server.session_secret (a long random secret, the same on every instance)"
        )
    base = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
    secret = settings.server.session_secret.get_secret_value().encode()
    return OidcClient(settings.sso, secret, base.rstrip("/") + "/auth/oidc/callback")


def create_app(settings: Settings) -> FastAPI:
    """The app with its runtime opened for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings) as rt:
            app.state.runtime = rt
            app.state.oidc = oidc_client(settings)
            stop = asyncio.Event()
            task = None
            if embedded_worker_enabled(settings):
                worker = rt.worker()
                task = asyncio.create_task(worker.run(stop), name="embedded-worker")
                log.info("embedded worker %s started", worker.id)
            webhooks = None
            if settings.webhooks:
                dispatcher = WebhookDispatcher(rt.engine, settings.webhooks)
                webhooks = asyncio.create_task(dispatcher.run(stop), name="webhooks")
            # API pulls and detection rules run where the embedded worker does: one process.
            hunting_task = (
                start_hunting_schedule(rt, app.state, stop) if embedded_worker_enabled(settings) else None
            )
            try:
                yield
            finally:
                stop.set()
                if task is not None:
                    await task
                if hunting_task is not None:
                    await hunting_task
                if webhooks is not None:
                    await webhooks
                if app.state.oidc is not None:
                    await app.state.oidc.aclose()

    app = FastAPI(title="Clampdown", version=__version__, lifespan=lifespan, openapi_url="/openapi.json")

    install_error_handlers(app)
    app.include_router(actions.router)
    app.include_router(people.router)
    app.include_router(session.router)
    mount_console(app)
    app.include_router(sso.router)
    app.include_router(guardrails.router)
    app.include_router(metrics.router)
    app.include_router(hunting.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> JSONResponse:
        """The database and every configured provider are reachable."""
        rt: Runtime = request.app.state.runtime
        checks: dict[str, Any] = {}
        try:
            await ping_database(rt.engine, settings.database.url)
            checks["database"] = "ok"
        except ClampdownError as exc:
            checks["database"] = exc.message
        for name, connector in rt.connectors.items():
            try:
                async with asyncio.timeout(10):
                    await connector.check()
                checks[name] = "ok"
            except TimeoutError:
                checks[name] = "timed out"
            except ClampdownError as exc:
                checks[name] = exc.message
            except Exception as exc:
                checks[name] = f"{type(exc).__name__}: {exc}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/api/v1/catalog", tags=["catalog"])
    async def get_catalog() -> list[dict[str, object]]:
        """Every action type: provider, who may run it, its inverse."""
        return [d.to_json() for d in catalog.all_actions()]

    return app
