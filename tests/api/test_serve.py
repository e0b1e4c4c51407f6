"""`clampdown serve` on SQLite: health endpoints, the catalog, and the embedded worker at work."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.api.conftest import free_port, start_server
from tests.lab_config import clampdown, create_user_token, memory_rows


@pytest.fixture
def served(server_factory) -> tuple[str, Path, Path]:  # type: ignore[no-untyped-def]
    srv = server_factory(embedded_worker=True)
    return srv.base, srv.config, srv.state_dir / "okta.db"


def test_health_ready_and_catalog(served: tuple[str, Path, Path]) -> None:
    base, _, _ = served
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True,
        "checks": {"database": "ok", "ad": "ok", "entra": "ok", "okta": "ok", "job:worker": "ok",
                   "job:hunting": "ok", "job:containment-watch": "ok"},
    }  # fmt: skip
    ids = {d["id"] for d in httpx.get(f"{base}/api/v1/catalog").json()}
    assert "okta.deactivate_user" in ids
    assert "/api/v1/catalog" in httpx.get(f"{base}/openapi.json").json()["paths"]


def test_embedded_worker_runs_what_the_cli_queues(served: tuple[str, Path, Path]) -> None:
    _, config, state = served
    token = create_user_token(config, "responder", "Security Operator")
    result = clampdown(
        config, "act", "okta.suspend_user", "alice", "-r", "INC-9", "--wait", "--timeout", "30", token=token
    )
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
    assert [row[:2] for row in memory_rows(state, "changes")] == [("id-alice", "suspend_user")]


def test_metrics_count_actions_and_provider_latency(served: tuple[str, Path, Path]) -> None:
    base, config, _ = served
    token = create_user_token(config, "metrics", "Global Administrator")
    done = clampdown(
        config, "act", "okta.suspend_user", "mia", "-r", "x", "--wait", "--timeout", "30", token=token
    )
    assert done.returncode == 0, done.stderr
    text = httpx.get(f"{base}/metrics").text
    assert 'clampdown_actions{status="completed",type="okta.suspend_user"} 1' in text
    assert "clampdown_queue_depth 0" in text
    assert 'clampdown_provider_call_seconds_count{provider="okta",step="perform"} 1.0' in text
    assert 'clampdown_action_outcomes_total{outcome="completed",type="okta.suspend_user"} 1.0' in text
    assert 'clampdown_background_job_up{job="worker"} 1.0' in text
    assert 'clampdown_background_job_restarts_total{job="worker"} 0.0' in text


def _serve_with(
    tmp_path: Path, database_url: str, **sections: object
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`clampdown serve` with an Okta that cannot be reached (a closed port) and extra config sections."""
    data = {
        "database": {"url": database_url},
        "server": {"embedded_worker": False},
        "providers": {"okta": {"org_url": f"http://localhost:{free_port()}", "api_token": "00-test"}},
        **sections,
    }
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data))
    proc, base = start_server(config)
    return proc, base, config


@pytest.fixture
def stopped() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.terminate()
        proc.wait(15)


def test_readiness_names_no_internals_unless_signed_in(
    engine: AsyncEngine, database_url: str, tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    proc, base, config = _serve_with(tmp_path, database_url)
    stopped.append(proc)
    ready = httpx.get(f"{base}/readyz", timeout=30)
    assert ready.status_code == 503
    checks = {"database": "ok", "okta": "failing", "job:containment-watch": "ok"}
    assert ready.json() == {"ready": False, "checks": checks}
    assert "localhost" not in ready.text and "Error" not in ready.text
    bad = httpx.get(f"{base}/readyz", headers={"Authorization": "Bearer cd_wrong"}, timeout=30)
    assert bad.json()["checks"]["okta"] == "failing"  # a wrong token is no one: still no details
    token = create_user_token(config, "viewer", "Security Reader")
    signed_in = httpx.get(f"{base}/readyz", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert signed_in.status_code == 503
    detail = signed_in.json()["checks"]["okta"]
    assert detail != "failing" and detail != "ok" and len(detail) > len("failing")


def test_metrics_need_the_scrape_token_when_one_is_configured(
    engine: AsyncEngine, database_url: str, tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    proc, base, _ = _serve_with(tmp_path, database_url, metrics={"token": "scrape-token-31337"})
    stopped.append(proc)
    assert httpx.get(f"{base}/metrics").status_code == 401
    assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert (
        httpx.get(
            f"{base}/metrics", headers={"Authorization": "Bearer sc\u00e4pe".encode("latin-1")}
        ).status_code
        == 401
    )
    scraped = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer scrape-token-31337"})
    assert scraped.status_code == 200 and "clampdown_queue_depth" in scraped.text


def test_metrics_on_their_own_listener_and_off_the_public_one(
    engine: AsyncEngine, database_url: str, tmp_path: Path, stopped: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    proc, base, _ = _serve_with(
        tmp_path, database_url, metrics={"public": False, "listen": f"127.0.0.1:{port}"}
    )
    stopped.append(proc)
    assert httpx.get(f"{base}/metrics").status_code == 404
    separate = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert separate.status_code == 200 and "clampdown_queue_depth" in separate.text
    assert httpx.get(f"http://127.0.0.1:{port}/api/v1/catalog").status_code == 404  # metrics only
