"""`clampdown audit checkpoint|verify` through the real command: a cut tail fails verify, naming how
many entries are missing, also when only an outside copy of the checkpoint is left; the lab's
config signs checkpoints."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog
from clampdown.config import load_settings
from clampdown_lab.orchestrator import _config
from tests.audit.conftest import make_event
from tests.lab_config import clampdown, write_config


async def test_verify_names_the_missing_entries(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    key = tmp_path / "audit.key"
    key.write_text("0123456789abcdef" * 4)
    config = write_config(tmp_path / "c.toml", database_url)
    config.write_text(config.read_text() + f'\n[audit]\ncheckpoint_key = {{file = "{key}"}}\n')
    await AuditLog(engine).append([make_event(i) for i in range(1, 7)])
    unanchored = clampdown(config, "audit", "verify")
    assert unanchored.returncode == 0 and "no signed checkpoint" in unanchored.stderr
    made = clampdown(config, "audit", "checkpoint", "--json")
    assert made.returncode == 0, made.stderr
    copy = tmp_path / "from-the-siem.json"
    copy.write_text(json.dumps({"event": "audit.checkpoint", "data": json.loads(made.stdout)}))
    intact = clampdown(config, "audit", "verify")
    assert intact.returncode == 0 and "chain intact, anchored by the checkpoint" in intact.stdout
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq > 4"))
        await conn.execute(text("DELETE FROM audit_checkpoints"))
    assert clampdown(config, "audit", "verify").returncode == 0  # both cut: the database alone cannot tell
    cut = clampdown(config, "audit", "verify", "--checkpoint", str(copy))
    assert cut.returncode == 1 and "entry 6: 2 entries missing" in cut.stdout
    without_key = write_config(tmp_path / "plain.toml", database_url)
    plain = clampdown(without_key, "audit", "verify")
    assert plain.returncode == 0 and "not anchored" in plain.stderr


def test_the_lab_config_signs_checkpoints_with_a_key_file_of_its_own(tmp_path: Path) -> None:
    import tomli_w

    path = tmp_path / "clampdown.toml"
    path.write_text(tomli_w.dumps(_config(tmp_path, [])))
    settings = load_settings(path)
    assert settings.audit.checkpoint_key is not None
    key_file = tmp_path / "audit-checkpoint-key"
    assert settings.audit.checkpoint_key.get_secret_value() == key_file.read_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
