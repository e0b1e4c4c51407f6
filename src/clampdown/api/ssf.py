"""/api/v1/ssf: Shared Signals push delivery (RFC 8935) of Security Event Tokens to a receiver.

A transmitter POSTs one SET (application/secevent+jwt) with its stream's bearer token. The answer
is 202 with no body when it is accepted, or 400 with RFC 8935's error object ({"err",
"description"}) when it is refused; 404 for an unknown receiver, 503 when the transmitter's keys
cannot be fetched (the transmitter retries).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse

from clampdown.api.actions import ERRORS
from clampdown.api.auth import client_address, runtime
from clampdown.errors import InvalidInput
from clampdown.limits import MAX_NAME
from clampdown.signals.receiver import MAX_SET_BYTES, SignalReceivers, receivers_for
from clampdown.signals.tokens import ERROR_CODES

router = APIRouter(prefix="/api/v1/ssf", tags=["shared signals"])
ReceiverName = Annotated[str, Path(min_length=1, max_length=MAX_NAME, description="[ssf.receivers.NAME]")]
_ERROR_BODY = {
    "description": "Refused: RFC 8935 section 2.4",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"err": {"type": "string", "enum": list(ERROR_CODES)},
                               "description": {"type": "string"}},
            }
        }
    },
}  # fmt: skip


def signal_receivers(request: Request) -> SignalReceivers:
    """One set of receivers per app, over the app's hunting event store."""
    return receivers_for(runtime(request), request.app.state)


async def _body(request: Request) -> bytes:
    """The body, read up to one byte past the limit (the receiver refuses it then)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_SET_BYTES:
        return b"\0" * (MAX_SET_BYTES + 1)
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_SET_BYTES:
            break
    return b"".join(chunks)


@router.post(
    "/receivers/{name}/events",
    status_code=202,
    responses={202: {"description": "Accepted"}, 400: _ERROR_BODY, 404: ERRORS[404], 503: ERRORS[503]},
    openapi_extra={"requestBody": {"content": {"application/secevent+jwt": {"schema": {"type": "string"}}},
                                   "required": True}},
)  # fmt: skip
async def push_security_event(name: ReceiverName, request: Request) -> Response:
    """Receive one Security Event Token pushed by the transmitter of receiver `name`."""
    receivers = signal_receivers(request)
    try:
        await receivers.receive(
            name,
            request.headers.get("authorization"),
            request.headers.get("content-type"),
            await _body(request),
            client_address(request),
        )
    except InvalidInput as exc:
        return JSONResponse({"err": exc.code, "description": exc.message}, status_code=400)
    return Response(status_code=202)
