"""Schemathesis over the OpenAPI document: no 5xx, and every response matches the schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from clampdown.permissions import GLOBAL_ADMINISTRATOR
from tests.api.conftest import Server

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


async def test_openapi_document_holds_under_generated_requests(server: Server) -> None:
    token = await server.token("fuzzer", GLOBAL_ADMINISTRATOR)
    binary = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    result = subprocess.run(
        [
            binary, "run", f"{server.base}/openapi.json",
            "-H", f"Authorization: Bearer {token}",
            "-c", CHECKS,
            "-n", "25", "--seed", "7", "--generation-database", "none",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:]
