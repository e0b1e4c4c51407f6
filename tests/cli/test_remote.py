"""`--server URL`: catalog, actions list|show, act, contain and release ask a real `clampdown serve`
over the REST API and
print exactly what local mode prints; its refusals and an unreachable server are the same clear
errors and exit codes, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from clampdown.cli.errors import EXIT_ACTION_FAILED, EXIT_UNAUTHENTICATED
from tests.api.conftest import free_port, start_server
from tests.lab_config import bootstrap_admin, memory_provider


def _run(config: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config), "CLAMPDOWN_TOKEN": token, "COLUMNS": "200"}
    env.pop("CLAMPDOWN_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "clampdown", *args], env=env, capture_output=True, text=True, timeout=120
    )


class Deployment:
    """A SQLite Clampdown served by `clampdown serve` (embedded worker), and its admin's token."""

    def __init__(self, config: Path, base: str, token: str) -> None:
        self.config, self.base, self.token = config, base, token

    def local(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        return _run(self.config, token or self.token, *args)

    def remote(
        self, *args: str, token: str | None = None, server: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # No configuration file at all: the command may not fall back to the database.
        nowhere = self.config.with_name("absent.toml")
        return _run(nowhere, token or self.token, "--server", server or self.base, *args)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("remote")
    config = folder / "clampdown.toml"
    data = {
        "database": {"url": f"sqlite:///{folder / 'clampdown.db'}"},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.05, "max_attempts": 1},
        "providers": {
            "okta": memory_provider("okta", folder / "okta.db"),
            # Every attempt on Entra ID fails: its actions end failed, with their error.
            "entra": memory_provider("entra", folder / "entra.db", transient_failures=100),
        },
    }
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    token = bootstrap_admin(config)
    proc, base = start_server(config)
    try:
        yield Deployment(config, base, token)
    finally:
        proc.terminate()
        proc.wait(15)


def _same(local: subprocess.CompletedProcess[str], remote: subprocess.CompletedProcess[str]) -> None:
    assert (remote.returncode, remote.stdout, remote.stderr) == (local.returncode, local.stdout, local.stderr)


def test_act_wait_over_the_api_prints_what_the_action_center_holds(deployment: Deployment) -> None:
    acted = deployment.remote("act", "okta.suspend_user", "alice", "-r", "INC-1", "--wait", "--timeout", "60",
                              "--json")  # fmt: skip
    assert acted.returncode == 0, acted.stderr
    shown = json.loads(acted.stdout)
    assert shown["status"] == "completed" and shown["requested_by"] == "admin"
    assert acted.stdout == deployment.local("actions", "show", str(shown["id"]), "--json").stdout

    summary = deployment.remote("act", "okta.suspend_user", "bob", "-r", "INC-1", "--wait")
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.startswith("action ") and "on bob: completed" in summary.stdout


def test_a_failed_action_reads_the_same_over_the_api(deployment: Deployment) -> None:
    """An action that ends failed keeps its error object through the API and back, and --wait on
    it exits 8 in both modes."""
    args = ("act", "entra.revoke_sessions", "henry", "-r", "INC-2", "--wait", "--timeout", "60")
    acted = deployment.remote(*args, "--json")
    assert acted.returncode == EXIT_ACTION_FAILED, acted.stderr
    shown = json.loads(acted.stdout)
    assert shown["status"] == "failed" and shown["error"]["code"]
    action_id = str(shown["id"])
    _same(deployment.local("actions", "show", action_id, "--json"),
          deployment.remote("actions", "show", action_id, "--json"))  # fmt: skip
    _same(deployment.local("actions", "show", action_id), deployment.remote("actions", "show", action_id))
    assert deployment.local(*args).returncode == EXIT_ACTION_FAILED


@pytest.mark.parametrize(
    "args",
    [
        ("catalog",),
        ("catalog", "--json"),
        ("actions", "list"),
        ("actions", "list", "--json"),
        ("actions", "list", "--status", "completed", "--type", "okta.suspend_user", "--limit", "1", "--json"),
        ("actions", "list", "--user", "alice", "--requested-by", "admin", "--since", "1h"),
        ("actions", "show", "1"),
        ("actions", "show", "1", "--json"),
        ("actions", "show", "99999"),
        ("actions", "list", "--status", "bogus"),
        ("act", "okta.suspend_user", "missing-dave", "-r", "INC-3"),
    ],
    ids=" ".join,
)
def test_the_same_output_as_local_mode(deployment: Deployment, args: tuple[str, ...]) -> None:
    deployment.remote("act", "okta.suspend_user", "alice", "-r", "INC-1", "--wait")  # action 1 exists
    _same(deployment.local(*args), deployment.remote(*args))


def test_paging_follows_the_cursor(deployment: Deployment) -> None:
    for user in ("erin", "frank", "grace"):
        deployment.remote("act", "okta.suspend_user", user, "-r", "INC-4")
    whole = json.loads(deployment.remote("actions", "list", "--json").stdout)
    assert len(whole) >= 3
    # The API's pages are 1000 at most; --limit beyond one page is asked page by page.
    _same(deployment.local("actions", "list", "--limit", "2", "--json"),
          deployment.remote("actions", "list", "--limit", "2", "--json"))  # fmt: skip


def test_a_bad_token_is_refused_with_exit_9(deployment: Deployment) -> None:
    local = deployment.local("actions", "list", token="not-a-token")
    remote = deployment.remote("actions", "list", token="not-a-token")
    assert local.returncode == remote.returncode == EXIT_UNAUTHENTICATED
    assert remote.stderr.startswith("error: ") and "Traceback" not in remote.stderr
    assert "token" in remote.stderr


def test_a_forbidden_action_is_refused_with_exit_7(deployment: Deployment) -> None:
    reader = _run(deployment.config, "", "users", "create", "rita", "--role", "Security Reader")
    assert reader.returncode == 0, reader.stderr
    token = _run(deployment.config, "", "tokens", "create", "--user", "rita").stdout.strip()
    args = ("act", "okta.suspend_user", "alice", "-r", "INC-5")
    local, remote = deployment.local(*args, token=token), deployment.remote(*args, token=token)
    assert local.returncode == remote.returncode == 7
    assert remote.stderr == local.stderr


def test_an_unreachable_server_is_one_line_and_exit_5(deployment: Deployment) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    done = deployment.remote("actions", "list", server=closed)
    assert done.returncode == 5
    assert (
        done.stderr.startswith(f"error: cannot reach the server {closed}") and "Traceback" not in done.stderr
    )
    # TLS to a server that speaks none: the handshake fails, and says so.
    tls = deployment.remote("catalog", server=deployment.base.replace("http://", "https://"))
    assert tls.returncode == 5 and "Traceback" not in tls.stderr and "error: " in tls.stderr


def test_contain_and_release_over_the_api(deployment: Deployment) -> None:
    """The plan prints as local mode prints it; a containment waited for ends as the action center
    holds it (its Entra steps fail here: exit 8 in both modes), and its release undoes it."""
    _same(deployment.local("contain", "carol", "-r", "INC-5", "--dry-run"),
          deployment.remote("contain", "carol", "-r", "INC-5", "--dry-run"))  # fmt: skip

    contained = deployment.remote("contain", "ivan", "-r", "INC-6", "--wait", "--timeout", "60", "--json")
    assert contained.returncode == EXIT_ACTION_FAILED, contained.stderr
    run = json.loads(contained.stdout)
    assert run["containment_id"] and run["batch_id"] and run["actions"]
    statuses = {a["provider"]: set() for a in run["actions"]}
    for action in run["actions"]:
        statuses[action["provider"]].add(action["status"])
        assert action == json.loads(deployment.local("actions", "show", str(action["id"]), "--json").stdout)
    assert statuses == {"okta": {"completed"}, "entra": {"failed", "cancelled"}} or statuses == {
        "okta": {"completed"}, "entra": {"failed"}
    }  # fmt: skip

    released = deployment.remote("release", "ivan", "-r", "INC-6", "--wait", "--timeout", "60")
    assert released.returncode == 0, released.stderr
    assert f"release for ivan: containment {run['containment_id']}" in released.stdout
    assert "completed" in released.stdout and "failed" not in released.stdout


def test_the_analysts_other_commands_print_the_same_over_the_api(deployment: Deployment) -> None:
    """Undo, cancel, approvals, containments, workers, hunting and people search answer over the API
    exactly as local mode prints them (a hunt's timing, on stderr, aside)."""
    acted = json.loads(deployment.remote("act", "okta.suspend_user", "kate", "-r", "INC-8", "--wait",
                                         "--json").stdout)  # fmt: skip
    undone = deployment.remote("actions", "undo", str(acted["id"]), "-r", "INC-8 false positive", "--wait",
                               "--json")  # fmt: skip
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["type"] == "okta.unsuspend_user"
    waiting = json.loads(deployment.remote("act", "okta.suspend_user", "liam", "-r", "INC-8",
                                           "--request-approval", "--json").stdout)  # fmt: skip
    contained = json.loads(deployment.remote("contain", "mona", "-r", "INC-9", "--wait", "--timeout", "60",
                                             "--json").stdout)  # fmt: skip
    cid = str(contained["containment_id"])
    for args in (
        ("actions", "pending"), ("actions", "pending", "--json"), ("containments", "list"),
        ("containments", "list", "--state", "active", "--json"), ("containments", "show", cid),
        ("containments", "show", cid, "--json"), ("containments", "list", "--state", "bogus"),
        ("users", "search", "ali", "--json"), ("actions", "reject", "99999"),
    ):  # fmt: skip
        _same(deployment.local(*args), deployment.remote(*args))
    # Moving parts (a worker's heartbeat, a hunt's timing) aside, the same answer.
    workers = [json.loads(d.local("workers", "--json").stdout) for d in (deployment,)]
    remote_workers = json.loads(deployment.remote("workers", "--json").stdout)
    assert [w["id"] for w in remote_workers] == [w["id"] for w in workers[0]]
    hunt = ("hunt", "IdentityLogonEvents | take 3")
    local, remote = deployment.local(*hunt), deployment.remote(*hunt)
    assert remote.returncode == local.returncode == 0 and remote.stdout == local.stdout, remote.stderr
    local, remote = deployment.local(*hunt, "--json"), deployment.remote(*hunt, "--json")
    assert {**json.loads(remote.stdout), "elapsed_ms": 0} == {**json.loads(local.stdout), "elapsed_ms": 0}
    acting = (*hunt, "--act", "okta.suspend_user", "--column", "AccountUpn", "-r", "INC-8")
    _same(deployment.local(*acting), deployment.remote(*acting))  # nothing found: the same refusal
    # An approval by the one who asked is refused the same way; the cancel of the waiting one works.
    _same(deployment.local("actions", "approve", str(waiting["id"])),
          deployment.remote("actions", "approve", str(waiting["id"])))  # fmt: skip
    _same(deployment.local("actions", "cancel", str(waiting["id"])),
          deployment.remote("actions", "cancel", str(waiting["id"])))  # fmt: skip
    rejected = deployment.remote("actions", "reject", str(waiting["id"]), "--json")
    assert rejected.returncode == 6 and "their own request" in rejected.stderr  # four eyes, over the API too


def test_commands_not_yet_over_the_api_say_so(deployment: Deployment) -> None:
    for args in (("containments", "watch"), ("audit", "verify")):
        done = deployment.remote(*args)
        assert done.returncode == 2, done.stderr
        assert "does not work over the API yet" in done.stderr


def test_act_from_a_file_and_its_dry_run_over_the_api(deployment: Deployment) -> None:
    targets = deployment.config.with_name("targets.txt")
    targets.write_text("# INC-10\nnina\nomar\nnina\n")
    args = ("act", "okta.suspend_user", "--from-file", str(targets), "-r", "INC-10")
    _same(deployment.local(*args, "--dry-run"), deployment.remote(*args, "--dry-run"))
    _same(deployment.local(*args, "--dry-run", "--json"), deployment.remote(*args, "--dry-run", "--json"))
    bulk = deployment.remote(*args, "--wait", "--timeout", "60", "--json")
    assert bulk.returncode == 0, bulk.stderr
    shown = json.loads(bulk.stdout)
    assert sorted(a["target"] for a in shown["actions"]) == ["nina", "omar"]  # one per distinct target
    assert {a["status"] for a in shown["actions"]} == {"completed"}
    assert shown == {**shown, "batch_id": shown["actions"][0]["batch_id"]}
    summary = deployment.remote(*args, "--idempotency-key", "inc-10-b")
    assert summary.returncode == 0 and summary.stdout.startswith("batch "), summary.stderr
    missing = deployment.remote("act", "okta.suspend_user", "--from-file", "/nonexistent", "-r", "x")
    assert missing.returncode == 2 and "cannot read /nonexistent" in missing.stderr
