"""Running Clampdown: `serve`, `worker`, `db upgrade`, `config check`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from clampdown import catalog
from clampdown.cli import render
from clampdown.cli.context import load, open_runtime, refuse_server, state
from clampdown.cli.errors import fail, run
from clampdown.errors import ConfigError
from clampdown.secevents import TransmitterKeys

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)


def worker(
    until_drained: Annotated[bool, typer.Option(help="Exit once nothing is queued or running.")] = False,
) -> None:
    """Run a worker: claims queued actions and performs them. Run as many as you like on PostgreSQL."""
    import asyncio
    import signal

    settings = load(server_side=True)

    async def go() -> None:
        async with open_runtime(settings) as rt:
            from clampdown.signals.declared import sync_declared_at_start

            await sync_declared_at_start(rt)  # the declared SSF streams, before any SET
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, rt.jobs.stopping.set)
            logging.getLogger("clampdown").setLevel(logging.INFO)
            w = rt.worker()
            render.errors.print(f"worker {w.id} running ({', '.join(rt.connectors) or 'no providers'})")
            # Supervised: the worker and the webhook dispatcher restart after an error.
            rt.jobs.start("worker", lambda stop: w.run(stop, until_drained=until_drained))
            dispatcher = rt.webhook_dispatcher()
            if dispatcher is not None and not until_drained:
                rt.jobs.start("webhooks", dispatcher.run)
            if rt.ssf_pusher is not None and not until_drained:  # the SETs of push streams
                rt.jobs.start("ssf-push", rt.ssf_pusher.run)
            if rt.anchor is not None:  # stopped last: the final checkpoint covers the last events
                rt.jobs.start("audit-anchor", rt.anchor.run, last=True)
            if rt.syslog is not None:  # stopped last too; the runtime's close sends the final checkpoint
                rt.jobs.start("syslog", rt.syslog.run, last=True)
            await rt.jobs.wait("worker")
            await rt.jobs.stop()

    run(go())


def serve(
    host: Annotated[str | None, typer.Option(help="Listen address (default from config: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from config: 8080).")] = None,
) -> None:
    """Run the API and console (and, on SQLite, the embedded worker)."""
    import uvicorn

    from clampdown.server import create_app
    from clampdown.services.runtime import is_sqlite_url, upgrade_schema

    settings = load(server_side=True)
    # The address given here is the one single sign-on redirects come back to.
    settings.server.host = host or settings.server.host
    settings.server.port = port or settings.server.port
    logging.getLogger("clampdown").setLevel(logging.INFO)
    tls = settings.server.tls_cert_file, settings.server.tls_key_file
    for path in tls:
        if path is not None and not Path(path).is_file():
            fail(f"server TLS: no such file: {path}", 4)
    if is_sqlite_url(settings.database.url):
        run(upgrade_schema(settings))  # the embedded default sets itself up; PostgreSQL on purpose
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.log_level.lower(),
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
        # X-Forwarded-For/-Proto only from the proxies named in the config.
        proxy_headers=True,
        forwarded_allow_ips=settings.server.trusted_proxies,
        # A stop (systemd's SIGTERM) does not wait on idle keep-alive clients for ever.
        timeout_graceful_shutdown=10,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to this version."""
    from clampdown.services.runtime import upgrade_schema

    run(upgrade_schema(load(server_side=True)))
    render.console.print("database schema is up to date")


@config_app.command("check")
def config_check() -> None:
    """Validate the configuration and name every problem."""
    from clampdown.config import load_settings
    from clampdown.connectors.registry import validate_provider

    refuse_server(server_side=True)
    try:
        settings = load_settings(state.config)
    except ConfigError as exc:
        fail(exc.message, 4)
    problems = []
    for name, section in settings.providers.items():
        try:
            validate_provider(name, section)
        except ConfigError as exc:
            problems.append(exc.message)
    transmitter = settings.ssf.transmitter
    if transmitter is not None:  # its signing keys are read as the server would at startup
        try:
            TransmitterKeys.load(transmitter.signing_key_file, transmitter.previous_key_files)
        except ConfigError as exc:
            problems.append(exc.message)
    for field in ("provider_concurrency", "provider_attempt_timeout_seconds"):
        for name in getattr(settings.engine, field):
            if name not in catalog.providers() and name not in settings.providers:
                problems.append(f"engine.{field}.{name}: no such provider")
    if problems:
        fail("; ".join(problems), 4)
    where = settings.config_path or "defaults (no config file)"
    render.console.print(f"config OK: {where}; providers: {', '.join(settings.providers) or 'none'}")
