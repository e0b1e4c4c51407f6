"""Every CLI `--json` with an API twin prints exactly what the twin route returns."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from clampdown.permissions import GLOBAL_ADMINISTRATOR
from tests.api.conftest import Server
from tests.lab_config import clampdown, spawn_worker


def _cli(server: Server, token: str, *args: str) -> Any:
    done = clampdown(server.config, *args, "--json", token=token)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


def _api(server: Server, token: str, method: str, path: str, key: str | None = None, **body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    answer = httpx.request(method, f"{server.base}{path}", headers=headers, json=body or None, timeout=60)
    assert answer.status_code < 300, (path, answer.status_code, answer.text)
    return answer.json()


async def test_every_cli_json_is_its_api_twin(server: Server, tmp_path: Path) -> None:
    token = await server.token("twin-admin", GLOBAL_ADMINISTRATOR)

    # act: POST /api/v1/actions (the idempotency key makes the API return the action the CLI queued).
    act = _cli(server, token, "act", "okta.suspend_user", "alice", "-r", "INC-1", "--idempotency-key", "k1")
    again = {"type": "okta.suspend_user", "target": "alice", "reason": "INC-1"}
    assert act == _api(server, token, "POST", "/api/v1/actions", "k1", **again)
    assert act["status"] == "queued" and act["error"] is None and "parameters" not in act

    # actions show: GET /api/v1/actions/{id}
    shown = _cli(server, token, "actions", "show", str(act["id"]))
    assert shown == _api(server, token, "GET", f"/api/v1/actions/{act['id']}")

    # act --from-file: POST /api/v1/actions/bulk
    users = tmp_path / "users.txt"
    users.write_text("bob\ncarol\n", encoding="utf-8")
    bulk = _cli(server, token, "act", "entra.suspend_user", "--from-file", str(users), "-r", "INC-2",
                "--idempotency-key", "k2")  # fmt: skip
    body = {"type": "entra.suspend_user", "targets": ["bob", "carol"], "reason": "INC-2"}
    assert bulk == _api(server, token, "POST", "/api/v1/actions/bulk", "k2", **body)
    assert len(bulk["actions"]) == 2

    # act --dry-run: POST /api/v1/actions/plan
    plan = _cli(server, token, "act", "okta.suspend_user", "dana", "-r", "what if", "--dry-run")
    body = {"type": "okta.suspend_user", "targets": ["dana"], "reason": "what if"}
    assert plan == _api(server, token, "POST", "/api/v1/actions/plan", **body)
    assert plan[0]["outcome"]

    # actions pending: GET /api/v1/approvals
    waiting = _cli(server, token, "act", "ad.disable_user", "erin", "-r", "INC-3", "--request-approval")
    assert waiting["status"] == "awaiting_approval"
    pending = _cli(server, token, "actions", "pending")
    assert pending == _api(server, token, "GET", "/api/v1/approvals")
    assert [a["id"] for a in pending] == [waiting["id"]]

    # contain --dry-run and release --dry-run: POST /api/v1/playbooks/{name}/run
    contained = _cli(server, token, "contain", "frank", "-r", "INC-4", "--dry-run")
    body = {"target": "frank", "reason": "INC-4", "dry_run": True}
    assert contained == _api(server, token, "POST", "/api/v1/playbooks/contain/run", **body)
    assert contained["batch_id"] is None and len(contained["plan"]) == 12  # the default contain

    # actions list: the items of GET /api/v1/actions
    listed = _cli(server, token, "actions", "list")
    assert listed == _api(server, token, "GET", "/api/v1/actions?limit=50")["items"]
    assert {a["id"] for a in listed} >= {act["id"], waiting["id"], *(a["id"] for a in bulk["actions"])}

    # hunt: POST /api/v1/hunting/query; elapsed_ms is a measurement, so only its type is compared.
    query = "SELECT 'alice' AS AccountName UNION ALL SELECT 'hank'"
    hunted = _cli(server, token, "hunt", query)
    answered = _api(server, token, "POST", "/api/v1/hunting/query", query=query)
    for result in (hunted, answered):
        assert isinstance(result.pop("elapsed_ms"), float)
    assert hunted == answered
    assert sorted(r[0] for r in hunted["rows"]) == ["alice", "hank"]

    # hunt --act: POST /api/v1/hunting/act
    acted = _cli(server, token, "hunt", query, "--act", "okta.suspend_user", "--column", "AccountName",
                 "-r", "INC-6", "--idempotency-key", "k3")  # fmt: skip
    body = {"query": query, "column": "AccountName", "action": "okta.suspend_user", "reason": "INC-6"}
    assert acted == _api(server, token, "POST", "/api/v1/hunting/act", "k3", **body)
    assert len(acted["actions"]) == 2

    # release --dry-run, once a worker has carried out a containment.
    run = _api(server, token, "POST", "/api/v1/playbooks/contain/run", target="gina", reason="INC-5")
    worker = spawn_worker(server.config)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = _api(server, token, "GET", f"/api/v1/actions?batch={run['batch_id']}")["items"]
            if all(a["status"] == "completed" for a in batch):
                break
            time.sleep(0.2)
        # workers: GET /api/v1/workers; a heartbeat's fields are measurements, so only compared as present.
        twins = [_cli(server, token, "workers"), _api(server, token, "GET", "/api/v1/workers")]
        for listed in twins:
            for w in listed:
                assert all(w.pop(k) is not None for k in ("last_seen_at", "expires_at", "inflight"))
        assert twins[0] == twins[1] and len(twins[0]) == 1 and twins[0][0]["live"], twins
    finally:
        worker.terminate()
        worker.wait(15)
    assert {a["status"] for a in batch} == {"completed"}, batch
    # containments show: GET /api/v1/containments/{id}, with what the accounts may still use.
    shown = _cli(server, token, "containments", "show", str(run["containment_id"]))
    assert shown == _api(server, token, "GET", f"/api/v1/containments/{run['containment_id']}")
    assert shown["state"] == "active" and shown["residual"], shown
    released = _cli(server, token, "release", "gina", "-r", "false positive", "--dry-run")
    body = {"target": "gina", "reason": "false positive", "dry_run": True}
    assert released == _api(server, token, "POST", "/api/v1/playbooks/release/run", **body)
    assert released["batch_id"] is None and released["plan"]

    # audit verify: GET /api/v1/audit/verify
    verified = _cli(server, token, "audit", "verify")
    assert verified == _api(server, token, "GET", "/api/v1/audit/verify")
    assert verified["ok"] and verified["entries"] > 0
