"""Syslog out: RFC 5424 frames with JSON or CEF bodies reach a receiver on loopback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.checkpoint import Checkpoint
from clampdown.auth.principal import Principal
from clampdown.config import load_settings
from clampdown.permissions import GLOBAL_ADMINISTRATOR
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
