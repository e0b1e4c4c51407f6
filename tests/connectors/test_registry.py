"""Building the connectors refuses to start, naming every gap at once, when a connector lacks the
async method of a catalog action it will be asked to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clampdown.catalog import all_actions, providers
from clampdown.config import Settings, load_settings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.connectors.registry import build_connectors, connector_class, missing_methods
from clampdown.errors import ConfigError
from clampdown.services.runtime import open_runtime
from tests.lab_config import clampdown, memory_provider, write_config

ROOT = Path(__file__).resolve().parents[2]  # the CLI subprocess imports tests.connectors.fixtures from here
FIXTURES = "tests.connectors.fixtures"
FORGOT_AD = (
    f"providers.ad ({FIXTURES}:ForgetfulDirectory) lacks ad.clear_password_reset -> clear_password_reset"
)
FORGOT_OKTA = f"providers.okta ({FIXTURES}:ForgetfulDirectory) lacks okta.deactivate_user -> deactivate_user"
BLOCKING_OKTA = (
    f"providers.okta ({FIXTURES}:BlockingDirectory) lacks okta.deactivate_user -> deactivate_user"
    " (not an async def)"
)


def _fixture(cls: str, provider: str, tmp_path: Path) -> dict[str, Any]:
    return {**memory_provider(provider, tmp_path / f"{provider}.db"), "connector": f"{FIXTURES}:{cls}"}


def _config(tmp_path: Path, providers: dict[str, Any]) -> Path:
    return write_config(tmp_path / "c.toml", f"sqlite:///{tmp_path / 'c.db'}", providers=providers)


def _forgetful(tmp_path: Path) -> dict[str, Any]:
    """ad and okta on the forgetful directory, entra on the complete memory directory."""
    return {
        "ad": _fixture("ForgetfulDirectory", "ad", tmp_path),
        "entra": memory_provider("entra", tmp_path / "entra.db"),
        "okta": _fixture("ForgetfulDirectory", "okta", tmp_path),
    }


def test_gaps_of_two_providers_are_one_error_and_nothing_is_built(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_connectors(Settings(providers=_forgetful(tmp_path)))
    assert err.value.message == f"{FORGOT_AD}; {FORGOT_OKTA}"
    # Refused before building any: not even the good entra section opened its state file.
    assert not list(tmp_path.glob("*.db"))


def test_a_sync_method_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_connectors(Settings(providers={"okta": _fixture("BlockingDirectory", "okta", tmp_path)}))
    assert err.value.message == BLOCKING_OKTA


def test_an_attribute_that_is_not_a_method_is_named() -> None:
    class Scheduled(MemoryConnector):
        revoke_sessions = "later"  # type: ignore[assignment]

    assert missing_methods("entra", Scheduled, MemorySettings(provider="entra")) == [
        "entra.revoke_sessions -> revoke_sessions (not callable)"
    ]


def test_a_section_gets_the_actions_of_its_name_whatever_connector_it_picks() -> None:
    # The engine sends okta.* to [providers.okta]: an Entra connector there cannot run them.
    entra = connector_class("okta", {"kind": "entra"})
    gaps = missing_methods("okta", entra, None)
    assert gaps[:2] == ["okta.unsuspend_user -> unsuspend_user", "okta.deactivate_user -> deactivate_user"]
    # Every other okta action the Entra connector has no method for (the eviction ones) too.
    lacking = [
        f"{d.id} -> {d.method}"
        for d in all_actions()
        if d.provider == "okta" and not hasattr(entra, d.method)
    ]
    assert gaps == lacking and "okta.reset_factors -> reset_factors" in gaps


@pytest.mark.parametrize("kind", ["ad", "entra", "okta"])
def test_the_builtin_connectors_have_every_catalog_method(kind: str) -> None:
    cls = connector_class(kind, {})
    assert cls.provider == kind
    assert any(d.provider == kind for d in all_actions())
    assert missing_methods(kind, cls, None) == []


@pytest.mark.parametrize("provider", providers())
def test_the_memory_directory_serves_every_provider(provider: str) -> None:
    cls = connector_class(provider, {"kind": "memory"})
    assert missing_methods(provider, cls, MemorySettings(provider=provider)) == []


def test_config_check_names_every_gap_in_one_line(tmp_path: Path) -> None:
    providers = {**_forgetful(tmp_path), "okta": _fixture("BlockingDirectory", "okta", tmp_path)}
    providers["entra"] = {"kind": "memory", "provider": "entra", "delay_seconds": "soon"}
    config = _config(tmp_path, providers)
    result = clampdown(config, "config", "check", cwd=ROOT)
    assert result.returncode == 4, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert FORGOT_AD in lines[0] and BLOCKING_OKTA in lines[0]
    assert "providers.entra.delay_seconds" in lines[0]  # alongside the problems it already named
    assert not list(tmp_path.glob("*.db"))


async def test_the_runtime_refuses_to_start(tmp_path: Path) -> None:
    config = _config(tmp_path, _forgetful(tmp_path))
    with pytest.raises(ConfigError) as err:
        async with open_runtime(load_settings(config)):
            pytest.fail("the runtime started")
    assert err.value.message == f"{FORGOT_AD}; {FORGOT_OKTA}"
    assert not list(tmp_path.glob("*.db"))


def test_a_worker_refuses_to_start(tmp_path: Path) -> None:
    config = _config(tmp_path, _forgetful(tmp_path))
    result = clampdown(config, "worker", "--until-drained", cwd=ROOT, timeout=60)
    assert result.returncode == 4, (result.stdout, result.stderr)
    assert result.stderr.strip() == f"error: {FORGOT_AD}; {FORGOT_OKTA}"
    assert not list(tmp_path.glob("*.db"))
