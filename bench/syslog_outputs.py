"""Syslog out under receiver faults: what a bulk request and single requests cost, per receiver state.

In-process (SQLite file, the no-op memory connector, no worker): a bulk of --targets
`okta.suspend_user`, then --requests single requests one after another (p50/p99 of their latency),
with syslog over TCP to a receiver that is: absent from the config (`none`), healthy (reads every
frame), `down` (connection refused), or `stuck` (a listener whose backlog is full: a connection
hangs). Then the receiver is made healthy and the time until every event has arrived is measured,
with a count of what was lost or repeated.

    .venv/bin/python bench/syslog_outputs.py --targets 3000 --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import tomli_w

from clampdown.auth.principal import Principal
from clampdown.config import load_settings
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.runtime import open_runtime

NOOP = {"connector": "clampdown.connectors.memory:MemoryConnector", "provider": "okta"}
ADMIN = Principal.from_roles("bench", frozenset({GLOBAL_ADMINISTRATOR}), {})


class Receiver:
    """Counts octet-counted frames (RFC 6587), in threads of its own: a sender that blocks the event
    loop (the old one) must not stall the receiver too."""

    def __init__(self) -> None:
        self.frames = 0
        self._lock = threading.Lock()

    def serve(self, sock: socket.socket) -> None:
        sock.listen(128)
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = sock.accept()
                threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        with contextlib.suppress(OSError, ValueError), conn, stream:  # closed at the end, as
            while True:  # syslog receivers do: the sender's confirmation
                length = b""
                while (c := stream.read(1)) != b" ":
                    if not c:
                        return
                    length += c
                stream.read(int(length))
                with self._lock:
                    self.frames += 1


def listener(state: str) -> tuple[socket.socket, list[socket.socket]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fillers: list[socket.socket] = []
    if state == "stuck":
        sock.listen(0)
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(sock.getsockname())
            fillers.append(filler)
    return sock, fillers  # "down": bound, not listening: refused; "healthy": Receiver.serve listens


async def one(state: str, targets: int, requests: int, workdir: Path) -> dict[str, object]:
    db = workdir / f"{state}.db"
    engine = create_engine(f"sqlite:///{db}")
    await upgrade(engine)
    await engine.dispose()
    sock, fillers = listener(state)
    port = sock.getsockname()[1]
    config: dict[str, object] = {"database": {"url": f"sqlite:///{db}"}, "providers": {"okta": NOOP}}
    if state != "none":
        config["syslog"] = {"port": port, "protocol": "tcp"}
    path = workdir / f"{state}.toml"
    path.write_text(tomli_w.dumps(config))
    receiver = Receiver()
    if state == "healthy":
        receiver.serve(sock)
    row: dict[str, object] = {"receiver": state}
    async with open_runtime(load_settings(path)) as rt:
        sender = getattr(rt, "syslog", None)  # absent before the outbox (the old blocking sender)
        if sender is not None:
            rt.jobs.start("syslog", sender.run, last=True)
        started = time.perf_counter()
        await rt.actions.request_bulk("okta.suspend_user", [f"b{i}" for i in range(targets)], "bench", ADMIN)
        row["bulk_s"] = round(time.perf_counter() - started, 3)
        latencies = []
        for i in range(requests):
            t = time.perf_counter()
            await rt.actions.request("okta.suspend_user", f"s{i}", "bench", ADMIN)
            latencies.append(time.perf_counter() - t)
        latencies.sort()
        row["p50_ms"] = round(statistics.median(latencies) * 1000, 2)
        row["p99_ms"] = round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2)
        if state in ("down", "stuck") and sender is not None:
            row["kept_in_outbox"] = await sender.pending()
            sock.close()
            for filler in fillers:
                filler.close()
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            receiver.serve(sock)
        if state != "none":
            expected = targets + requests
            back = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(120):
                    while receiver.frames < expected:
                        await asyncio.sleep(0.02)
            row["all_delivered_after_s"] = round(time.perf_counter() - back, 2)
            row["lost"] = max(0, expected - receiver.frames)
            row["repeated"] = max(0, receiver.frames - expected)
        await rt.jobs.stop()
    sock.close()
    return row


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--states", default="none,healthy,down,stuck")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for state in args.states.split(","):
            print(await one(state, args.targets, args.requests, Path(tmp)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
