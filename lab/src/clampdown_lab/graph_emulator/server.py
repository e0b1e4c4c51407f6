"""Running the emulator: in a thread (tests, benchmarks) or as a detached process (the lab),
over HTTPS on loopback. `python -m clampdown_lab.graph_emulator --state DIR --port N` is the
command the lab component starts."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from clampdown_lab.graph_emulator.app import Emulator, create_app
from clampdown_lab.graph_emulator.tenant import Tenant, write_snapshot
from clampdown_lab.graph_emulator.throttling import ThrottleConfig
from clampdown_lab.graph_emulator.tls import write_tls_files

STATE_FILE = "tenant.json"
SAVE_INTERVAL_SECONDS = 1.0


def _uvicorn_config(app: FastAPI, tls_dir: Path) -> uvicorn.Config:
    _, cert, key = write_tls_files(tls_dir)
    return uvicorn.Config(
        app,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
    )


class ThreadedEmulator:
    """An emulator serving HTTPS from a background thread of this process."""

    def __init__(self, emulator: Emulator, tls_dir: Path) -> None:
        self.emulator = emulator
        self.ca_path = write_tls_files(tls_dir)[0]
        config = _uvicorn_config(create_app(emulator), tls_dir)
        config.host, config.port = "127.0.0.1", 0  # the kernel picks a free port
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="graph-emulator")
        self.port = 0
        self.url = ""

    def start(self) -> ThreadedEmulator:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Graph emulator did not start")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def _saving_lifespan(emulator: Emulator, path: Path) -> contextlib.AbstractAsyncContextManager[None]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async def saver() -> None:
            while True:
                await asyncio.sleep(SAVE_INTERVAL_SECONDS)
                if emulator.graph.dirty:
                    emulator.graph.dirty = False
                    # Snapshot on the loop (cheap), serialize and write off it (not cheap).
                    await asyncio.to_thread(write_snapshot, emulator.tenant.to_json(), path)

        task = asyncio.create_task(saver())
        try:
            yield
        finally:
            task.cancel()
            emulator.tenant.save(path)

    return lifespan(FastAPI())


def main(argv: list[str] | None = None) -> None:
    """Serve the tenant saved in --state until stopped; state is saved every second and at exit."""
    parser = argparse.ArgumentParser(description="Clampdown's Microsoft Graph emulator")
    parser.add_argument(
        "--state", required=True, type=Path, help="directory holding tenant.json and TLS files"
    )
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--admin-key-file", type=Path)
    parser.add_argument(
        "--graph-like-throttling",
        action="store_true",
        help="apply limits in the spirit of Graph's documented ones",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="time each Graph request takes")
    parser.add_argument("--throttle", type=Path, help="JSON file with a ThrottleConfig")
    args = parser.parse_args(argv)
    state_path = args.state / STATE_FILE
    emulator = Emulator(tenant=Tenant.load(state_path))
    if args.admin_key_file:
        emulator.admin_key = args.admin_key_file.read_text(encoding="utf-8").strip()
    if args.graph_like_throttling:
        emulator.throttle.configure(ThrottleConfig.like_graph())
    if args.throttle:
        emulator.throttle.configure(
            ThrottleConfig.model_validate_json(args.throttle.read_text(encoding="utf-8"))
        )
    emulator.latency_seconds = args.latency_ms / 1000
    app = create_app(emulator)
    app.router.lifespan_context = lambda _app: _saving_lifespan(emulator, state_path)
    config = _uvicorn_config(app, args.state / "tls")
    config.host, config.port = args.host, args.port
    uvicorn.Server(config).run()
