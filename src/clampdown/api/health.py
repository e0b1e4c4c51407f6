"""/healthz, /readyz and /api/v1/catalog: is the process up, can it reach what it needs, what can it do."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from clampdown import catalog
from clampdown.api.auth import SESSION_COOKIE, current_principal, runtime
from clampdown.errors import ClampdownError
from clampdown.services.runtime import ping_database

router = APIRouter()


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


async def _authenticated(request: Request) -> bool:
    """Whether the caller holds a valid token or session (any role); never raises."""
    if not request.headers.get("authorization") and SESSION_COOKIE not in request.cookies:
        return False
    try:
        await current_principal(request)
    except ClampdownError:
        return False
    return True


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """The database and every configured provider are reachable and every background job runs:
    "ok" or "failing" for each, and why one fails only to a signed-in caller (the reasons name
    internal hosts and drivers)."""
    rt = runtime(request)
    checks: dict[str, str] = {}
    try:
        await ping_database(rt.engine, rt.settings.database.url)
        checks["database"] = "ok"
    except ClampdownError as exc:
        checks["database"] = exc.message
    for name, connector in rt.connectors.items():
        try:
            async with asyncio.timeout(10):
                await connector.check()
            checks[name] = "ok"
        except TimeoutError:
            checks[name] = "timed out"
        except ClampdownError as exc:
            checks[name] = exc.message
        except Exception as exc:
            checks[name] = f"{type(exc).__name__}: {exc}"
    for job in rt.job_health():  # the supervised background jobs: worker, webhooks, hunting
        checks[f"job:{job.name}"] = job.describe()
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"ready": ready}
    if ready or await _authenticated(request):
        body["checks"] = checks
    else:
        body["checks"] = {name: "ok" if v == "ok" else "failing" for name, v in checks.items()}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/api/v1/catalog", tags=["catalog"])
async def get_catalog() -> list[dict[str, object]]:
    """Every action type: provider, who may run it, its inverse."""
    return [d.to_json() for d in catalog.all_actions()]
