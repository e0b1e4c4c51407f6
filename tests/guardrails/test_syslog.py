"""Syslog out: RFC 5424 frames with JSON or CEF bodies reach a receiver on loopback; a receiver that
is down, or stuck with its backlog full, loses no event and holds up no request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.checkpoint import Checkpoint
from clampdown.auth.principal import Principal
from clampdown.config import load_settings
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.retry import RetryPolicy
from clampdown.services.runtime import open_runtime
from tests.lab_config import memory_provider, write_config


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("body", ["json", "cef"])
async def test_events_go_out_as_rfc5424(
    engine: AsyncEngine, database_url: str, tmp_path: Path, body: str
) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    config = write_config(
        tmp_path / "c.toml", database_url, providers={"okta": memory_provider("okta", tmp_path / "o.db")}
    )
    config.write_text(config.read_text() + f'\n[syslog]\nport = {port}\nformat = "{body}"\n')
    admin = Principal.from_roles("ana", frozenset({GLOBAL_ADMINISTRATOR}), {})
    async with open_runtime(load_settings(config)) as rt:
        await rt.actions.request("okta.suspend_user", "vic", "INC-12", admin)
    message = receiver.recv(65535).decode()
    receiver.close()
    header, _, payload = message.partition(" - ")  # no structured data
    assert header.startswith("<110>1 ")  # facility 13 (log audit), severity 6 (info)
    assert " clampdown " in header and header.endswith("action_requested")
    if body == "json":
        event = json.loads(payload)
        assert (event["event"], event["actor"], event["data"]["target"]) == ("action.requested", "ana", "vic")
    else:
        assert payload.startswith("CEF:0|Clampdown|Clampdown|")
        assert "suser=ana" in payload and "duser=vic" in payload and "cs1=INC-12" in payload


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_audit_checkpoint_goes_out_to_syslog(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    config = write_config(
        tmp_path / "c.toml", database_url, providers={"okta": memory_provider("okta", tmp_path / "o.db")}
    )
    config.write_text(
        config.read_text() + f'\n[syslog]\nport = {port}\n\n[audit]\ncheckpoint_key = {{env = "AUDIT_KEY"}}\n'
    )
    key = "syslog-test-checkpoint-key-0123456789abcdef"
    admin = Principal.from_roles("ana", frozenset({GLOBAL_ADMINISTRATOR}), {})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AUDIT_KEY", key)
        settings = load_settings(config)
    async with open_runtime(settings) as rt:
        await rt.actions.request("okta.suspend_user", "vic", "INC-12", admin)
        assert rt.anchor is not None
        made = await rt.anchor.checkpoint()
    messages = [receiver.recv(65535).decode() for _ in range(2)]
    receiver.close()
    header, _, payload = messages[1].partition(" - ")
    assert header.endswith("audit_checkpoint")
    event = json.loads(payload)
    copy = Checkpoint.from_json(event)
    assert event["event"] == "audit.checkpoint" and copy == made
    assert copy.signature_holds(key.encode())


class Receiver:
    """A TCP syslog receiver (RFC 6587 octet counting) on a fixed port, that can go down and come back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.frames: list[str] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, sock: socket.socket | None = None) -> None:
        if sock is not None:
            self._server = await asyncio.start_server(self._read, sock=sock)
        else:
            self._server = await asyncio.start_server(self._read, "127.0.0.1", self.port)

    async def stop(self) -> None:
        """Down: the listener closed and every connection hung up."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()
        self._writers.clear()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length = int((await reader.readuntil(b" "))[:-1])
                self.frames.append((await reader.readexactly(length)).decode())
        writer.close()  # at the end of the stream, as syslog receivers do: the sender's confirmation

    def targets(self) -> list[str]:
        return [json.loads(f.partition(" - ")[2])["data"]["target"] for f in self.frames
                if "action_requested" in f.partition(" - ")[0]]  # fmt: skip

    async def wait_for(self, count: int, seconds: float = 30) -> None:
        async with asyncio.timeout(seconds):
            while len(self.targets()) < count:
                await asyncio.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tcp_config(tmp_path: Path, database_url: str, port: int) -> Path:
    config = write_config(
        tmp_path / "c.toml", database_url, providers={"okta": memory_provider("okta", tmp_path / "o.db")}
    )
    config.write_text(config.read_text() + f'\n[syslog]\nport = {port}\nprotocol = "tcp"\n')
    return config


QUICK = RetryPolicy(max_attempts=1_000_000, base_seconds=0.05, max_seconds=0.3)


async def test_a_receiver_down_then_back_gets_every_event_once_in_order(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    receiver = Receiver(port)
    admin = Principal.from_roles("ana", frozenset({GLOBAL_ADMINISTRATOR}), {})
    async with open_runtime(load_settings(_tcp_config(tmp_path, database_url, port))) as rt:
        assert rt.syslog is not None
        rt.syslog.policy = QUICK
        rt.jobs.start("syslog", rt.syslog.run, last=True)
        for i in range(20):  # nothing listens: refused
            await rt.actions.request("okta.suspend_user", f"a{i:02}", "INC-1", admin)
        await asyncio.sleep(0.5)  # the sender tried, and tries again
        assert await rt.syslog.pending() == 20  # kept, not dropped
        await receiver.start()
        await receiver.wait_for(20)
        await receiver.stop()  # down again, this time under an open connection
        await asyncio.sleep(0.2)
        for i in range(20, 30):
            await rt.actions.request("okta.suspend_user", f"a{i:02}", "INC-1", admin)
        await asyncio.sleep(0.5)
        assert await rt.syslog.pending() == 10
        await receiver.start()
        await receiver.wait_for(30)
        await rt.jobs.stop()
        assert await rt.syslog.pending() == 0
    assert receiver.targets() == [f"a{i:02}" for i in range(30)]
    await receiver.stop()


def _stuck_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listener that accepts nothing and whose backlog is full: a new connection hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    return listener, fillers


async def test_a_stuck_receiver_holds_up_neither_requests_nor_a_bulk(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    listener, fillers = _stuck_listener()
    port = listener.getsockname()[1]
    admin = Principal.from_roles("ana", frozenset({GLOBAL_ADMINISTRATOR}), {})
    receiver = Receiver(port)
    async with open_runtime(load_settings(_tcp_config(tmp_path, database_url, port))) as rt:
        assert rt.syslog is not None
        rt.syslog.policy = QUICK
        rt.jobs.start("syslog", rt.syslog.run, last=True)
        # Before, every event waited up to 2 s for a connection on the event loop: 300 events,
        # 10 minutes. Now the requests never touch the receiver; the guard only catches a hang.
        async with asyncio.timeout(60):
            await rt.actions.request("okta.suspend_user", "first", "INC-2", admin)
            bulk = await rt.actions.request_bulk(
                "okta.suspend_user", [f"b{i:03}" for i in range(300)], "INC-2", admin
            )
        assert len(bulk.actions) == 300
        assert await rt.syslog.pending() >= 301  # all kept while the receiver is stuck
        health = {job.name: job.describe() for job in rt.job_health()}
        assert health["syslog"] == "ok"  # a stuck receiver is not a failed job
        await receiver.start(sock=listener)  # the receiver reads again
        await receiver.wait_for(301, seconds=60)
        await rt.jobs.stop()
    assert receiver.targets() == ["first", *(f"b{i:03}" for i in range(300))]
    await receiver.stop()
    for filler in fillers:
        filler.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_final_checkpoint_at_shutdown_goes_out_too(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    receiver = Receiver(port)
    await receiver.start()
    config = _tcp_config(tmp_path, database_url, port)
    config.write_text(config.read_text() + '\n[audit]\ncheckpoint_key = {env = "AUDIT_KEY"}\n')
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AUDIT_KEY", "syslog-test-checkpoint-key-0123456789abcdef")
        settings = load_settings(config)
    admin = Principal.from_roles("ana", frozenset({GLOBAL_ADMINISTRATOR}), {})
    async with open_runtime(settings) as rt:
        assert rt.anchor is not None and rt.syslog is not None
        rt.jobs.start("audit-anchor", rt.anchor.run, last=True)  # as `clampdown serve` does
        rt.jobs.start("syslog", rt.syslog.run, last=True)
        await rt.actions.request("okta.suspend_user", "vic", "INC-3", admin)
        await rt.jobs.stop()  # the anchor signs the head as it stops, after the sender may have
    async with asyncio.timeout(10):
        while not any("audit_checkpoint" in f.partition(" - ")[0] for f in receiver.frames):
            await asyncio.sleep(0.05)
    assert receiver.targets() == ["vic"]
    await receiver.stop()
