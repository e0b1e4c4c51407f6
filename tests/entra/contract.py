"""Validation of recorded Graph exchanges against the Microsoft Graph v1.0 OpenAPI subset in the
shared contracts (openapi-core), including each request and answer inside a `$batch`."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from tests.contracts import REPO, contracts_dir

CONTRACTS = contracts_dir() / "graph"
CSDL = CONTRACTS / "csdl" / "cleanMetadata-v1.0.xml"
# The shared tool plus the eviction operations (contracts/README.md): the subset is built from the
# shared CSDL with it, never written into the shared folder.
SUBSET_TOOL = REPO / "contracts" / "build_graph_subset.py"
# The document's server is https://graph.microsoft.com/v1.0/; the emulator's URL stands for it.
SPEC_HOST = "https://graph.microsoft.com"


@functools.cache
def subset_document() -> Path:
    """The Graph v1.0 subset, built once per version of the CSDL and the tool (in the temp dir,
    replaced atomically)."""
    key = hashlib.sha256(CSDL.read_bytes() + SUBSET_TOOL.read_bytes()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / "clampdown-contracts" / f"graph-v1.0-subset-{key}.yaml"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            [sys.executable, str(SUBSET_TOOL), str(CSDL), str(partial)], check=True, capture_output=True
        )
        partial.replace(target)
    return target


@functools.cache
def graph_api() -> OpenAPI:
    return OpenAPI.from_file_path(str(subset_document()))


@dataclass(frozen=True)
class Exchange:
    """One request and its answer, as seen on the wire (or inside a `$batch`)."""

    method: str
    path: str  # /v1.0/...
    query: dict[str, str]
    request_headers: dict[str, str]
    request_body: Any  # parsed JSON or None
    status: int
    response_headers: dict[str, str]
    response_body: Any

    @classmethod
    async def capture(cls, response: httpx.Response) -> Exchange:
        await response.aread()
        request = response.request
        return cls(
            request.method,
            request.url.path,
            dict(parse_qsl(request.url.query.decode())),
            dict(request.headers),
            json.loads(request.content) if request.content else None,
            response.status_code,
            dict(response.headers),
            response.json() if response.content else None,
        )

    def inner(self) -> list[Exchange]:
        """The exchanges inside a `$batch`, matched by id (answers may come in any order)."""
        answers = {a["id"]: a for a in self.response_body["responses"]}
        out = []
        for item in self.request_body["requests"]:
            answer = answers[item["id"]]
            parts = urlsplit(item["url"])
            out.append(
                Exchange(
                    item["method"],
                    "/v1.0" + parts.path,
                    dict(parse_qsl(parts.query)),
                    dict(item.get("headers") or {}),
                    item.get("body"),
                    int(answer["status"]),
                    dict(answer.get("headers") or {}),
                    answer.get("body"),
                )
            )
        return out


def validate(exchange: Exchange) -> int:
    """Raise AssertionError naming the exchange if it breaks the contract; the number checked."""
    body = json.dumps(exchange.request_body).encode() if exchange.request_body is not None else None
    request = MockRequest(
        SPEC_HOST,
        exchange.method.lower(),
        exchange.path,
        args=exchange.query,
        headers={"Authorization": "Bearer x"} | exchange.request_headers,
        data=body,
        content_type="application/json" if body is not None else None,
    )
    where = f"{exchange.method} {exchange.path} {exchange.query} -> {exchange.status}"
    try:
        graph_api().validate_request(request)
    except Exception as exc:
        raise AssertionError(f"request breaks the contract: {where}: {exc.__cause__ or exc}") from exc
    payload = json.dumps(exchange.response_body).encode() if exchange.response_body is not None else b""
    response = MockResponse(
        payload,
        status_code=exchange.status,
        content_type="application/json" if exchange.response_body is not None else None,
    )
    try:
        graph_api().validate_response(request, response)
    except Exception as exc:
        raise AssertionError(
            f"answer breaks the contract: {where}: {str(exc.__cause__ or exc)[:600]}"
        ) from exc
    if exchange.status >= 400:
        error = exchange.response_body["error"]
        assert error["code"] and error["message"] and error["innerError"]["request-id"], where
    checked = 1
    if exchange.path == "/v1.0/$batch" and exchange.status == 200:
        checked += sum(validate(inner) for inner in exchange.inner())
    return checked


class Recorder:
    """Collects every exchange an httpx client makes (attach with `attach`)."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    def attach(self, client: httpx.AsyncClient) -> None:
        client.event_hooks["response"].append(self._record)

    async def _record(self, response: httpx.Response) -> None:
        self.exchanges.append(await Exchange.capture(response))

    def validate_all(self) -> int:
        return sum(validate(e) for e in self.exchanges)
