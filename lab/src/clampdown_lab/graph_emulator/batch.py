"""JSON batching (`POST /$batch`) with Graph's documented rules: at most 20 requests, unique ids,
relative URLs without the version, a body needs a Content-Type, `dependsOn` ordering with 424 for
a failed dependency, each request throttled on its own, responses possibly out of order."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from clampdown_lab.graph_emulator.graph_api import (
    GraphApi,
    GraphFault,
    GraphRequest,
    GraphResponse,
    error_response,
)
from clampdown_lab.graph_emulator.tokens import Caller

MAX_BATCH_REQUESTS = 20


def _validate(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise GraphFault(400, "BadRequest", "Invalid batch payload format.")
    requests: list[dict[str, Any]] = payload["requests"]
    if not requests:
        raise GraphFault(400, "BadRequest", "Invalid batch payload format: no requests.")
    if len(requests) > MAX_BATCH_REQUESTS:
        raise GraphFault(
            400,
            "BadRequest",
            f"Number of requests in the batch ({len(requests)}) exceeds the limit of {MAX_BATCH_REQUESTS}.",
        )
    seen: set[str] = set()  # lower-cased: Graph compares request ids case-insensitively
    for item in requests:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("id", "method", "url")
        ):
            raise GraphFault(
                400,
                "BadRequest",
                "Invalid batch payload format: every request needs string 'id', 'method' and 'url'.",
            )
        if item["id"].lower() in seen:
            raise GraphFault(
                400,
                "BadRequest",
                f"Request id '{item['id']}' is used more than once (ids are compared ignoring case); "
                "batch request ids must be unique.",
            )
        seen.add(item["id"].lower())
        headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
        if "body" in item and "content-type" not in headers:
            raise GraphFault(
                400, "BadRequest", f"Request '{item['id']}' has a body but no Content-Type header."
            )
    for item in requests:
        for dep in item.get("dependsOn") or []:
            if not isinstance(dep, str) or dep.lower() not in seen:
                raise GraphFault(
                    400, "BadRequest", f"Request '{item['id']}' depends on unknown request '{dep}'."
                )
    return requests


def run_batch(api: GraphApi, payload: Any, caller: Caller, base_url: str, shuffle: bool) -> dict[str, Any]:
    """The `$batch` response body; GraphFault (400) when the batch itself is malformed."""
    requests = _validate(payload)
    api.counters.batch_requests += 1
    results: dict[str, GraphResponse] = {}
    pending = list(requests)
    while pending:
        ready = [r for r in pending if all(d.lower() in results for d in r.get("dependsOn") or [])]
        if not ready:
            raise GraphFault(400, "BadRequest", "The dependsOn references form a cycle.")
        for item in ready:
            pending.remove(item)
            results[item["id"].lower()] = _run_one(api, item, results, caller, base_url)
    responses = []
    for item in requests:
        result = results[item["id"].lower()]
        entry: dict[str, Any] = {
            "id": item["id"],
            "status": result.status,
            "headers": {
                k: v
                for k, v in result.headers.items()
                if k.lower() in ("content-type", "retry-after", "location")
            },
        }
        if result.body is not None:
            entry["body"] = result.body
        responses.append(entry)
    if shuffle:
        random.shuffle(responses)  # Graph does not promise any order; clients must match by id
    return {"responses": responses}


def _run_one(
    api: GraphApi, item: dict[str, Any], done: dict[str, GraphResponse], caller: Caller, base_url: str
) -> GraphResponse:
    if any(done[d.lower()].status >= 400 for d in item.get("dependsOn") or []):
        return error_response(
            api.tenant,
            424,
            "FailedDependency",
            "The request could not be processed because a request it depends on failed.",
        )
    url = item["url"]
    parts = urlsplit(url)
    if parts.scheme or parts.path.startswith(("/v1.0/", "/beta/", "v1.0/")):
        return error_response(
            api.tenant,
            400,
            "BadRequest",
            f"Invalid request URL '{url}': batch request URLs are relative and carry no version.",
        )
    path = parts.path if parts.path.startswith("/") else "/" + parts.path
    request = GraphRequest(
        method=item["method"].upper(),
        path=path,
        query=dict(parse_qsl(parts.query)),
        headers={k.lower(): str(v) for k, v in (item.get("headers") or {}).items()},
        body=item.get("body"),
        caller=caller,
        base_url=base_url,
    )
    return api.handle(request)
