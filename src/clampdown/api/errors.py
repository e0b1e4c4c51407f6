"""One error shape for every failure: {"error": {"code", "message", "field"}}; never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from clampdown.errors import (
    ClampdownError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    TooManyAttempts,
    TransientError,
)

log = logging.getLogger(__name__)

_STATUSES: list[tuple[type[ClampdownError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (TooManyAttempts, 429),
    (StoreUnavailable, 503),
    (TransientError, 503),
    (ConfigError, 500),
]


def status_for(exc: ClampdownError) -> int:
    """The HTTP status for an error type; 401 unauthenticated, 502 a provider's refusal."""
    if exc.code == "unauthenticated":
        return 401
    return next((s for cls, s in _STATUSES if isinstance(exc, cls)), 502)


def error_response(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": {"code": code, "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to the one JSON shape."""

    @app.exception_handler(ClampdownError)
    async def clampdown_error(_: Request, exc: ClampdownError) -> JSONResponse:
        response = error_response(status_for(exc), exc.code, exc.message)
        line, column = getattr(exc, "line", None), getattr(exc, "column", None)
        if isinstance(line, int) and isinstance(column, int):
            # A query's mistake: where it is (1-based), for the editor to underline.
            body = {"error": {"code": exc.code, "message": exc.message, "field": "query", "line": line,
                              "column": column}}  # fmt: skip
            response = JSONResponse(body, status_code=response.status_code)
        if isinstance(exc, TooManyAttempts):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        first_field = None
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            first_field = first_field or where
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return error_response(422, "invalid_input", "; ".join(problems), first_field)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        codes = {
            400: "invalid_input",
            401: "unauthenticated",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
        }
        return error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(500, "internal_error", "internal error; the server log has the details")
