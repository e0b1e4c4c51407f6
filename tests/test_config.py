"""Configuration: file, environment overrides, secrets by reference, relative SQLite paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from clampdown.config import load_settings
from clampdown.connectors.registry import build_connectors
from clampdown.errors import ConfigError


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[database]\nurl = 'sqlite:///data/x.db'\n[engine]\nmax_attempts = 3\n")
    settings = load_settings(path)
    assert settings.database.url == f"sqlite:///{tmp_path / 'data' / 'x.db'}"  # relative to the file
    monkeypatch.setenv("CLAMPDOWN_ENGINE__MAX_ATTEMPTS", "5")
    monkeypatch.setenv("CLAMPDOWN_DATABASE__URL", "postgresql://db.internal/clampdown")
    settings = load_settings(path)
    assert settings.engine.max_attempts == 5
    assert settings.database.url == "postgresql://db.internal/clampdown"


def test_config_found_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text("log_level = 'DEBUG'\n")
    monkeypatch.setenv("CLAMPDOWN_CONFIG", str(path))
    monkeypatch.chdir(tmp_path)
    assert load_settings().log_level == "DEBUG"


def test_secret_from_env_and_file_is_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import BaseModel

    from clampdown.config import Secret

    class Section(BaseModel):
        token: Secret
        other: Secret

    secret_file = tmp_path / "token"
    secret_file.write_text("s3cr3t-file\n")
    monkeypatch.setenv("OKTA_TOKEN", "s3cr3t-env")
    section = Section.model_validate({"token": {"env": "OKTA_TOKEN"}, "other": {"file": str(secret_file)}})
    assert section.token.get_secret_value() == "s3cr3t-env"
    assert section.other.get_secret_value() == "s3cr3t-file"
    assert "s3cr3t" not in repr(section) and "s3cr3t" not in str(section.model_dump())


def test_every_bad_provider_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[providers.a]\nkind = 'nope'\n"
        "[providers.b]\nconnector = 'clampdown.connectors.memory:MemoryConnector'\n"
        "state_path = 3\nextra = 1\n"
    )
    with pytest.raises(ConfigError) as err:
        build_connectors(load_settings(path))
    message = err.value.message
    assert "providers.a: unknown connector kind 'nope'" in message
    assert "providers.b.state_path" in message and "providers.b.extra: unknown setting" in message
