"""The syslog receiver down, then accepting and never reading, then back: every audit event made in
the three phases reaches the healthy receiver exactly once, in the audit log's order; none is lost
in the socket buffer of the receiver that never read (issue 15). Latency: bench/faults_syslog.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog
from clampdown.auth.principal import Principal
from clampdown.config import load_settings
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.runtime import open_runtime
from tests.guardrails.test_syslog import QUICK, Receiver, _free_port, _tcp_config

pytestmark = pytest.mark.slow
ADMIN = Principal.from_roles("ana", frozenset({GLOBAL_ADMINISTRATOR}), {})


class NeverReads:
    """A listener on `port` that accepts every connection and never reads from it: the kernel takes
    (and acknowledges) what fits in a small receive buffer, then the sender's writes block."""

    def __init__(self, port: int) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def unread(self) -> int:
        """Bytes sitting unread in its connections' buffers (lost when it goes away)."""
        import fcntl
        import struct
        import termios

        total = 0
        for conn in self.accepted:
            with contextlib.suppress(OSError):
                total += struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.FIONREAD, b"\0" * 4))[0]
        return total

    def close(self) -> None:
        """Goes away with what it never read: its connections are reset."""
        self._stop.set()
        self._thread.join(5)
        self.listener.close()
        for conn in self.accepted:
            conn.close()


async def _until(what: str, check, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not within {seconds:g} s: {what}"
        await asyncio.sleep(0.05)


def _bodies(receiver: Receiver) -> list[dict[str, object]]:
    return [json.loads(f.partition(" - ")[2]) for f in receiver.frames]


async def test_receiver_down_then_never_reading_then_back_gets_every_event_once_in_order(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    async with open_runtime(load_settings(_tcp_config(tmp_path, database_url, port))) as rt:
        syslog = rt.syslog
        assert syslog is not None
        syslog.policy = QUICK
        syslog.confirm_idle_seconds = 0.2
        syslog.confirm_seconds = 1.0
        syslog._transport.write_seconds = 1.0  # a receiver whose buffer is full is given up sooner
        rt.jobs.start("syslog", syslog.run, last=True)

        # 1. Down: the port is closed. Everything waits in the outbox.
        for i in range(20):
            await rt.actions.request("okta.suspend_user", f"down{i:02}", "INC-15", ADMIN)
        await asyncio.sleep(0.3)
        assert await syslog.pending() == 20

        # 2. Accepts and never reads: a few events fit in its buffer and look sent, a bulk fills it.
        stuck = NeverReads(port)
        try:
            for i in range(10):
                await rt.actions.request("okta.suspend_user", f"stuck{i:02}", "INC-15", ADMIN)
            await rt.actions.request_bulk(
                "okta.suspend_user", [f"bulk{i:03}" for i in range(200)], "INC-15", ADMIN
            )

            async def swallowed_and_tried_again() -> bool:
                return len(stuck.accepted) >= 2 and stuck.unread() > 0

            # It took bytes it never read, and the sender, unconfirmed, came back with them.
            await _until("the sender gives up on the receiver that never reads", swallowed_and_tried_again)
            assert await syslog.pending() + syslog.unconfirmed == 230  # none left the outbox
        finally:
            stuck.close()

        # 3. Back: a receiver that reads, on the same port.
        receiver = Receiver(port)
        await receiver.start()
        for i in range(20):
            await rt.actions.request("okta.suspend_user", f"back{i:02}", "INC-15", ADMIN)
        await receiver.wait_for(250, seconds=60)
        await rt.jobs.stop()
        await _until("the outbox is empty", lambda: _empty(syslog))

    expected = [f"down{i:02}" for i in range(20)] + [f"stuck{i:02}" for i in range(10)]
    expected += [f"bulk{i:03}" for i in range(200)] + [f"back{i:02}" for i in range(20)]
    assert receiver.targets() == expected  # each once, in order
    # Every audit event, not only the requests: the same sequence as the audit log's.
    audit = [(r["event"], r["subject"]) async for r in AuditLog(engine).rows()]
    assert [(b["event"], b["subject"]) for b in _bodies(receiver)] == audit
    await receiver.stop()


async def _empty(syslog) -> bool:  # type: ignore[no-untyped-def]
    return await syslog.pending() == 0 and syslog.unconfirmed == 0
