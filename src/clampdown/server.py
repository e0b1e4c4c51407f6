"""The assembly: the one module above api and web that builds the application `clampdown serve` runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from clampdown import __version__
from clampdown.api import (
    actions,
    containments,
    guardrails,
    health,
    hunting,
    metrics,
    overview,
    people,
    session,
    signals_health,
    ssf,
    sso,
)
from clampdown.api import workers as workers_api
from clampdown.api.errors import install_error_handlers
from clampdown.auth.oidc import OidcClient
from clampdown.auth.sso_access import SsoAccess
from clampdown.config import Settings
from clampdown.errors import ConfigError
from clampdown.hunting.schedule import start_schedule as start_hunting_schedule
from clampdown.services.runtime import Runtime, embedded_worker_enabled, open_runtime
from clampdown.signals.declared import sync_declared_at_start
from clampdown.signals.poll import start_polls as start_signal_polls
from clampdown.views.actions import use_console_settings
from clampdown.web import mount_console

log = logging.getLogger(__name__)


def oidc_client(settings: Settings) -> OidcClient | None:
    """The single sign-on client when [sso] is configured; it needs server.session_secret."""
    if settings.sso is None:
        return None
    if settings.server.session_secret is None:
        raise ConfigError(
            "sso needs server.session_secret (a long random secret, the same on every instance)"
        )
    scheme = "https" if settings.server.tls_cert_file else "http"
    base = settings.server.public_url or f"{scheme}://{settings.server.host}:{settings.server.port}"
    secret = settings.server.session_secret.get_secret_value().encode()
    return OidcClient(settings.sso, secret, base.rstrip("/") + "/auth/oidc/callback")


class _ListenerServer(uvicorn.Server):
    """A second listener inside the server's process: the main server owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def create_metrics_app(settings: Settings) -> FastAPI:
    """/metrics alone, for `metrics.listen`; its runtime is the main app's (set in its lifespan)."""
    app = FastAPI(title="Clampdown metrics", version=__version__, openapi_url=None, docs_url=None,
                  redoc_url=None)  # fmt: skip
    install_error_handlers(app)
    app.include_router(metrics.router)
    return app


async def _serve_metrics(settings: Settings, rt: Runtime) -> tuple[uvicorn.Server, asyncio.Task[None]] | None:
    address = settings.metrics.listen_address()
    if address is None:
        return None
    app = create_metrics_app(settings)
    app.state.runtime = rt
    config = uvicorn.Config(app, host=address[0], port=address[1], lifespan="off",
                            log_level=settings.log_level.lower())  # fmt: skip
    server = _ListenerServer(config)
    task = asyncio.create_task(server.serve(), name="metrics-listener")
    while not server.started and not task.done():  # refuse to come up half: the port may be taken
        await asyncio.sleep(0.02)
    if task.done():
        task.result()
        raise ConfigError(f"metrics.listen: could not listen on {settings.metrics.listen}")
    log.info("metrics on http://%s:%s/metrics", *address)
    return server, task


def create_app(settings: Settings) -> FastAPI:
    """The app with its runtime opened for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings) as rt:
            app.state.runtime = rt
            await sync_declared_at_start(rt, app.state)  # the declared SSF streams, before any SET
            use_console_settings(settings.console)  # incidents linked as configured
            app.state.oidc = oidc_client(settings)
            if app.state.oidc is not None:  # SSO sessions and tokens follow the provider's groups
                SsoAccess(rt.auth, app.state.oidc).attach()
            if embedded_worker_enabled(settings):  # each job restarts after an error (rt.jobs)
                worker = rt.worker(embedded=True)
                rt.jobs.start("worker", worker.run)
                log.info("embedded worker %s started", worker.id)
            dispatcher = rt.webhook_dispatcher()
            if dispatcher is not None:
                rt.jobs.start("webhooks", dispatcher.run)
            if rt.ssf_pusher is not None:  # the SETs of push streams, woken when one is committed
                rt.jobs.start("ssf-push", rt.ssf_pusher.run)
            # API pulls and detection rules run where the embedded worker does: one process.
            if embedded_worker_enabled(settings):
                start_hunting_schedule(rt, app.state)
                start_signal_polls(rt, app.state)  # Shared Signals receivers that poll (RFC 8936)
            if settings.watch.enabled:  # active containments' accounts read again on a schedule
                rt.jobs.start("containment-watch", rt.watch().run)
            if rt.anchor is not None:  # stopped last: the final checkpoint covers the last events
                rt.jobs.start("audit-anchor", rt.anchor.run, last=True)
            if rt.syslog is not None:  # stopped last too; the runtime's close sends the final checkpoint
                rt.jobs.start("syslog", rt.syslog.run, last=True)
            metrics_listener = await _serve_metrics(settings, rt)
            try:
                yield
            finally:
                if metrics_listener is not None:
                    metrics_listener[0].should_exit = True
                    await metrics_listener[1]
                await rt.jobs.stop()
                if getattr(app.state, "signals", None) is not None:  # the transmitters' HTTP clients
                    await app.state.signals.aclose()
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
    app.include_router(containments.router)
    if settings.metrics.public:
        app.include_router(metrics.router)
    app.include_router(hunting.router)
    app.include_router(health.router)
    app.include_router(workers_api.router)
    app.include_router(overview.router)
    app.include_router(ssf.router)
    app.include_router(ssf.well_known)
    app.include_router(signals_health.router)

    return app
