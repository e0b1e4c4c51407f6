"""`clampdown serve` on SQLite: health endpoints, the catalog, and the embedded worker at work."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

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
                   "job:hunting": "ok"},
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
