"""/api/v1/ssf: Shared Signals. Push delivery (RFC 8935) of Security Event Tokens to a receiver of
Clampdown's; and Clampdown as a transmitter: its metadata (/.well-known/ssf-configuration), keys,
stream management (SSF 1.0 section 8) and poll serving (RFC 8936), below.

A transmitter POSTs one SET (application/secevent+jwt) with its stream's bearer token. The answer
is 202 with no body when it is accepted, or 400 with RFC 8935's error object ({"err",
"description"}) when it is refused; 404 for an unknown receiver, 503 when the transmitter's keys
cannot be fetched (the transmitter retries).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from clampdown.api.actions import ERRORS
from clampdown.api.auth import client_address, current_principal, runtime
from clampdown.api.errors import error_response
from clampdown.api.schemas import ErrorBody, Text
from clampdown.auth.principal import Principal
from clampdown.errors import InvalidInput, NotFound
from clampdown.limits import (
    MAX_NAME,
    MAX_SSF_AUTHORIZATION,
    MAX_SSF_DESCRIPTION,
    MAX_SSF_EVENT_TYPE,
    MAX_SSF_EVENTS_REQUESTED,
    MAX_SSF_JTI,
    MAX_SSF_POLL_ACKS,
    MAX_SSF_POLL_EVENTS,
    MAX_SSF_STATE,
    MAX_SSF_STREAM_ID,
    MAX_SSF_URL,
)
from clampdown.secevents import POLL, PUSH
from clampdown.signals.poll_serving import PollRequest, serve_poll
from clampdown.signals.receiver import MAX_SET_BYTES, SignalReceivers, receivers_for
from clampdown.signals.stream_config import Delivery, Stream, StreamRequest
from clampdown.signals.streams import SignalStreams, streams_for
from clampdown.signals.tokens import ERROR_CODES

PathParam = Path

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


# Clampdown as a transmitter (SSF 1.0 sections 7 and 8, RFC 8936 poll). Bad input answers 400 (as SSF
# says), in the API's one error shape; a stream not the caller's, or no [ssf.transmitter], 404.


class _Ssf400Route(APIRoute):
    """A route whose refused input answers 400 rather than the API's 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                            for e in exc.errors()]  # fmt: skip
                return error_response(400, "invalid_input", "; ".join(problems))
            except InvalidInput as exc:
                return error_response(400, exc.code, exc.message)

        return route


_STREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 503)
}
streams_router = APIRouter(prefix="/streams", route_class=_Ssf400Route, responses=_STREAM_ERRORS)
well_known = APIRouter(tags=["shared signals"])
CallerDep = Annotated[Principal, Depends(current_principal)]
StreamId = Annotated[str, Query(min_length=1, max_length=MAX_SSF_STREAM_ID)]


def transmitter(request: Request) -> SignalStreams:
    """The app's transmitter; NotFound (404) when [ssf.transmitter] is not configured."""
    return streams_for(runtime(request), request.app.state)


TransmitterDep = Annotated[SignalStreams, Depends(transmitter)]


Url = Annotated[Text, Field(max_length=MAX_SSF_URL)]


class DeliveryIn(BaseModel):
    method: Text = Field(max_length=MAX_SSF_URL, description=f"{PUSH} (push) or {POLL} (poll)")
    endpoint_url: Text | None = Field(
        None, max_length=MAX_SSF_URL, description="Push: the receiver's endpoint"
    )
    authorization_header: Text | None = Field(
        None, max_length=MAX_SSF_AUTHORIZATION, description="Push: sent as Authorization; never shown back"
    )


class StreamConfigIn(BaseModel):
    """The receiver-supplied members of a stream configuration (SSF 1.0 section 8.1.1). `aud` on
    creation asks for an audience (default: a push endpoint's origin, or the owner's name); `iss` and,
    later, `aud` must repeat the transmitter's if given; other transmitter-supplied members are ignored."""

    stream_id: Text | None = Field(None, max_length=MAX_SSF_STREAM_ID, description="Update, replace: which")
    delivery: DeliveryIn | None = None
    events_requested: list[Annotated[Text, Field(max_length=MAX_SSF_EVENT_TYPE)]] | None = Field(
        None, max_length=MAX_SSF_EVENTS_REQUESTED
    )
    description: Text | None = Field(None, max_length=MAX_SSF_DESCRIPTION)
    iss: Text | None = Field(None, max_length=MAX_SSF_URL)
    aud: Url | list[Url] | None = None  # at most MAX_SSF_AUDIENCES values (checked by the service)

    def request(self) -> StreamRequest:
        given = self.delivery
        delivery = Delivery(given.method, given.endpoint_url, given.authorization_header) if given else None
        described = "description" in self.model_fields_set
        return StreamRequest(delivery, self.events_requested, self.description, described, self.iss, self.aud)

    def named(self) -> str:
        if not self.stream_id:
            raise InvalidInput("stream_id: say which stream")
        return self.stream_id


class DeliveryOut(BaseModel):
    method: str
    endpoint_url: str | None = None


class StreamConfigOut(BaseModel):
    stream_id: str
    iss: str
    aud: str | list[str]
    events_supported: list[str]
    events_requested: list[str]
    events_delivered: list[str]
    delivery: DeliveryOut
    min_verification_interval: int
    description: str | None = None


class StatusIn(BaseModel):
    stream_id: Text = Field(max_length=MAX_SSF_STREAM_ID)
    status: Text = Field(max_length=16, description="enabled, paused or disabled")
    reason: Text | None = Field(None, max_length=MAX_SSF_DESCRIPTION)


class StatusOut(BaseModel):
    stream_id: str
    status: str
    reason: str | None = None


class SubjectIn(BaseModel):
    stream_id: Text = Field(max_length=MAX_SSF_STREAM_ID)
    subject: dict[str, Any] = Field(description="A subject identifier (RFC 9493): email, iss_sub or opaque")
    verified: bool | None = None


class VerifyIn(BaseModel):
    stream_id: Text = Field(max_length=MAX_SSF_STREAM_ID)
    state: Text | None = Field(None, max_length=MAX_SSF_STATE)


class SetErrIn(BaseModel):
    err: Text = Field(max_length=64)
    description: Text | None = Field(None, max_length=MAX_SSF_DESCRIPTION)


Jti = Annotated[Text, Field(max_length=MAX_SSF_JTI)]


class PollIn(BaseModel):
    """An RFC 8936 poll: acknowledge or refuse SETs received before, ask for more."""

    model_config = ConfigDict(populate_by_name=True)

    max_events: int | None = Field(None, alias="maxEvents", ge=0, le=MAX_SSF_POLL_EVENTS)
    return_immediately: bool = Field(False, alias="returnImmediately")
    ack: list[Jti] = Field(default_factory=list, max_length=MAX_SSF_POLL_ACKS)
    set_errs: dict[str, SetErrIn] = Field(default_factory=dict, alias="setErrs", max_length=MAX_SSF_POLL_ACKS)


class PollOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    sets: dict[str, str]
    more_available: bool = Field(alias="moreAvailable")


def _status(stream: Stream) -> dict[str, Any]:
    return {"stream_id": stream.stream_id, "status": stream.status, "reason": stream.status_reason}


async def _metadata(service: SignalStreams, path: str) -> dict[str, Any]:
    if path.strip("/") != service.metadata_path():
        raise NotFound(f"no Shared Signals transmitter at /.well-known/ssf-configuration/{path[:100]}")
    return service.metadata()


@well_known.get("/.well-known/ssf-configuration", responses={404: ERRORS[404]})
async def ssf_configuration(service: TransmitterDep) -> dict[str, Any]:
    """The transmitter configuration metadata (SSF 1.0 section 7.1)."""
    return service.metadata()


@well_known.get("/.well-known/ssf-configuration/{path:path}", responses={404: ERRORS[404]})
async def ssf_configuration_of_path(path: str, service: TransmitterDep) -> dict[str, Any]:
    """The metadata at the address of an issuer with a path (SSF 1.0 section 7.2)."""
    return await _metadata(service, path)


@router.get("/jwks", responses={404: ERRORS[404]})
async def ssf_jwks(service: TransmitterDep) -> dict[str, Any]:
    """The public keys the SETs Clampdown transmits are signed with (the metadata's jwks_uri)."""
    return service.jwks()


@streams_router.get(
    "", response_model=StreamConfigOut | list[StreamConfigOut], response_model_exclude_none=True
)
async def read_streams(
    service: TransmitterDep, caller: CallerDep, stream_id: StreamId | None = None
) -> dict[str, Any] | list[dict[str, Any]]:
    """One of the caller's streams (`stream_id`), or all of them (SSF 1.0 section 8.1.1.2)."""
    if stream_id is not None:
        return service.configuration(await service.get_stream(caller, stream_id))
    return [service.configuration(s) for s in await service.list_streams(caller)]


@streams_router.post("", status_code=201, response_model=StreamConfigOut, response_model_exclude_none=True)
async def create_stream(
    body: StreamConfigIn, request: Request, service: TransmitterDep, caller: CallerDep
) -> dict[str, Any]:
    """Create a stream (SSF 1.0 section 8.1.1.1): push to the receiver's endpoint, or poll."""
    stream = await service.create_stream(caller, body.request(), client_address(request))
    return service.configuration(stream)


@streams_router.patch("", response_model=StreamConfigOut, response_model_exclude_none=True)
async def update_stream(
    body: StreamConfigIn, request: Request, service: TransmitterDep, caller: CallerDep
) -> dict[str, Any]:
    """Change the members given (SSF 1.0 section 8.1.1.3)."""
    stream = await service.update_stream(caller, body.named(), body.request(), source=client_address(request))
    return service.configuration(stream)


@streams_router.put("", response_model=StreamConfigOut, response_model_exclude_none=True)
async def replace_stream(
    body: StreamConfigIn, request: Request, service: TransmitterDep, caller: CallerDep
) -> dict[str, Any]:
    """Replace the receiver-supplied members (SSF 1.0 section 8.1.1.4)."""
    stream = await service.update_stream(
        caller, body.named(), body.request(), replace=True, source=client_address(request)
    )
    return service.configuration(stream)


@streams_router.delete("", status_code=204, response_class=Response)
async def delete_stream(
    stream_id: StreamId, request: Request, service: TransmitterDep, caller: CallerDep
) -> None:
    """Delete a stream, its subjects and its SETs (SSF 1.0 section 8.1.1.5)."""
    await service.delete_stream(caller, stream_id, client_address(request))


@streams_router.get("/status", response_model=StatusOut, response_model_exclude_none=True)
async def read_stream_status(
    stream_id: StreamId, service: TransmitterDep, caller: CallerDep
) -> dict[str, Any]:
    """A stream's status (SSF 1.0 section 8.1.2.1)."""
    return _status(await service.get_stream(caller, stream_id))


@streams_router.post("/status", response_model=StatusOut, response_model_exclude_none=True)
async def update_stream_status(
    body: StatusIn, request: Request, service: TransmitterDep, caller: CallerDep
) -> dict[str, Any]:
    """Enable, pause or disable a stream (SSF 1.0 section 8.1.2.2)."""
    stream = await service.set_status(
        caller, body.stream_id, body.status, body.reason, client_address(request)
    )
    return _status(stream)


@streams_router.post("/subjects:add", status_code=200, response_class=Response,
                     responses={200: {"description": "Added"}})  # fmt: skip
async def add_subject(
    body: SubjectIn, request: Request, service: TransmitterDep, caller: CallerDep
) -> Response:
    """Add a subject to a stream (SSF 1.0 section 8.1.3.2)."""
    await service.change_subject(caller, body.stream_id, body.subject, add=True, verified=body.verified,
                                 source=client_address(request))  # fmt: skip
    return Response(status_code=200)


@streams_router.post("/subjects:remove", status_code=204, response_class=Response)
async def remove_subject(
    body: SubjectIn, request: Request, service: TransmitterDep, caller: CallerDep
) -> None:
    """Remove a subject from a stream (SSF 1.0 section 8.1.3.3)."""
    await service.change_subject(
        caller, body.stream_id, body.subject, add=False, source=client_address(request)
    )


@streams_router.post("/verify", status_code=204, response_class=Response,
                     responses={429: {"model": ErrorBody, "description": "Asked too soon"}})  # fmt: skip
async def verify_stream(body: VerifyIn, request: Request, service: TransmitterDep, caller: CallerDep) -> None:
    """Queue a verification event to the stream (SSF 1.0 section 8.1.4.2)."""
    await service.verify(caller, body.stream_id, body.state, client_address(request))


@streams_router.post("/{stream_id}/poll", response_model=PollOut)
async def poll_stream(
    stream_id: Annotated[str, PathParam(min_length=1, max_length=MAX_SSF_STREAM_ID)],
    body: PollIn,
    service: TransmitterDep,
    caller: CallerDep,
) -> PollOut:
    """Poll a poll stream's SETs (RFC 8936), acknowledging or refusing those received before."""
    errors = {jti: (e.err, e.description) for jti, e in body.set_errs.items()}
    request = PollRequest(body.max_events, body.return_immediately, body.ack, errors)
    answer = await serve_poll(service, caller, stream_id, request)
    return PollOut.model_validate({"sets": answer.sets, "moreAvailable": answer.more_available})


router.include_router(streams_router)
