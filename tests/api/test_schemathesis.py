"""Schemathesis over the OpenAPI document, and over the console's pages: no 5xx, and every API
response matches the schema. The hooks add the date and cursor edge values to the strategies."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.web import action_center, containments_page, hunting_page, people_pages, session_pages
from tests.api.conftest import Server

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
HOOKS = "tests.api.schemathesis_hooks"
CONSOLE_PAGES = (session_pages, people_pages, action_center, containments_page, hunting_page)


def schemathesis(schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    root = str(Path(__file__).parents[2])
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": os.pathsep.join([root, *sys.path])}
    return subprocess.run(
        [binary, "run", schema, *args, "--seed", "7", "--generation-database", "none"],
        capture_output=True, text=True, timeout=900, env=env, cwd=root,
    )  # fmt: skip


def console_schema() -> dict[str, object]:
    """The console's pages are left out of /openapi.json; this is their document, built the same way."""
    routes = []
    for module in CONSOLE_PAGES:
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            shown = copy.copy(route)
            shown.include_in_schema = True
            routes.append(shown)
    return get_openapi(title="Clampdown console", version="1", routes=routes)


async def test_openapi_document_holds_under_generated_requests(server: Server) -> None:
    token = await server.token("fuzzer", GLOBAL_ADMINISTRATOR)
    auth = f"Authorization: Bearer {token}"
    result = schemathesis(f"{server.base}/openapi.json", "-H", auth, "-c", CHECKS, "-n", "25")
    assert result.returncode == 0, result.stdout[-6000:]


async def test_console_pages_hold_under_generated_requests(server: Server, tmp_path: Path) -> None:
    await server.token("console-fuzzer", GLOBAL_ADMINISTRATOR)
    signed_in = httpx.post(
        f"{server.base}/api/v1/session",
        json={"username": "console-fuzzer", "password": "correct horse battery"},
    )
    assert signed_in.status_code == 200, signed_in.text
    cookie = "; ".join(f"{k}={v}" for k, v in signed_in.cookies.items())
    schema = tmp_path / "console-openapi.json"
    schema.write_text(json.dumps(console_schema()))
    result = schemathesis(
        str(schema), "--url", server.base, "-H", f"Cookie: {cookie}", "-c", "not_a_server_error", "-n", "40"
    )
    assert result.returncode == 0, result.stdout[-6000:]
    # The cookie really signs the generated requests in: the pages answer, not the sign-in page.
    page = httpx.get(f"{server.base}/actions", headers={"Cookie": cookie})
    assert page.status_code == 200 and "console-fuzzer" in page.text
