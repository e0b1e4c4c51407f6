"""/api/v1/actions: request, list, export, show, cancel and undo actions."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from clampdown.api.auth import current_principal, runtime
from clampdown.api.schemas import ActionPage, ActionRequest, BulkRequest, ErrorBody, UndoRequest
from clampdown.auth.principal import Principal
from clampdown.errors import InvalidInput
from clampdown.limits import (
    MAX_ACTION_TYPE,
    MAX_BATCH_ID,
    MAX_BULK_IDEMPOTENCY_KEY,
    MAX_CURSOR,
    MAX_ERROR_CODE,
    MAX_ID,
    MAX_IDEMPOTENCY_KEY,
    MAX_INCIDENT,
    MAX_INSTANCE,
    MAX_PAGE,
    MAX_PROVIDER,
    MAX_SECRET_KEY,
    MAX_TARGET,
    MAX_USERNAME,
    clean_id,
)
from clampdown.model import ActionFilter, ActionSource, ActionStatus
from clampdown.services.actions import check_filter
from clampdown.views import ActionView, BulkView
from clampdown.views.base import spreadsheet_safe

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 422, 503)
}
ActionId = Annotated[int, Path(ge=1, le=MAX_ID, description="The action's id")]
router = APIRouter(prefix="/api/v1/actions", tags=["actions"], responses=ERRORS)
CallerDep = Annotated[Principal, Depends(current_principal)]
EXPORT_PAGE = 500


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if text.startswith("id:") and text[3:].isascii() and text[3:].isdigit():
            return clean_id("cursor", int(text[3:]))  # a 64-bit id, or the database cannot compare it
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidInput("cursor: not a cursor this API returned")


def _filter(
    status: Annotated[list[ActionStatus] | None, Query(description="Repeat for several")] = None,
    type: Annotated[str | None, Query(max_length=MAX_ACTION_TYPE, description="Action id")] = None,
    provider: Annotated[str | None, Query(max_length=MAX_PROVIDER)] = None,
    instance: Annotated[
        str | None, Query(max_length=MAX_INSTANCE, description="The directory it ran in ([providers.NAME])")
    ] = None,
    target: Annotated[
        str | None, Query(max_length=MAX_TARGET, description="Target as given, or account id")
    ] = None,
    requested_by: Annotated[str | None, Query(max_length=MAX_USERNAME)] = None,
    batch: Annotated[str | None, Query(max_length=MAX_BATCH_ID, description="Bulk batch id")] = None,
    since: Annotated[datetime | None, Query(description="Requested at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Requested before (ISO 8601)")] = None,
    source: Annotated[
        ActionSource | None, Query(description="Where it came from: manual, user_page, playbook, rule, ...")
    ] = None,
    incident: Annotated[
        str | None, Query(max_length=MAX_INCIDENT, description="The incident (ticket id)")
    ] = None,
    error_code: Annotated[
        str | None, Query(max_length=MAX_ERROR_CODE, description="Why it failed: its error code")
    ] = None,
) -> ActionFilter:
    # Checked where every face's filter is: ActionService.list_actions.
    return ActionFilter(
        statuses=tuple(status or ()),
        type=type,
        provider=provider,
        instance=instance,
        target=target,
        requested_by=requested_by,
        batch_id=batch,
        since=since,
        until=until,
        source=source,
        incident=incident,
        error_code=error_code,
    )


FilterDep = Annotated[ActionFilter, Depends(_filter)]


class RequestedActionView(ActionView):
    secret_key: str | None = Field(
        default=None,
        description="Only for an action that makes a secret for you (a new random AD password), "
        "only in this answer: the one-time key to open it with POST /api/v1/actions/{id}/secret",
    )


class SecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret_key: str = Field(max_length=MAX_SECRET_KEY, description="The key the request's answer carried")


class SecretView(BaseModel):
    action_id: int
    secret: str = Field(description="Shown once: it is removed from Clampdown as it is sent")


@router.post("", status_code=202, response_model=RequestedActionView)
async def request_action(
    body: ActionRequest,
    request: Request,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_IDEMPOTENCY_KEY)] = None,
) -> Response:
    """Queue one action. The same Idempotency-Key returns the same action, never a second one."""
    action = await runtime(request).actions.request(
        body.type, body.target, body.reason, caller, idempotency_key=idempotency_key,
        request_approval=body.request_approval, until=body.until, instance=body.instance,
        source=ActionSource(body.source), incident=body.incident,
    )  # fmt: skip
    if action.secret_key is None:  # the CLI's twin: secret_key is absent, not null
        return JSONResponse(ActionView.model_validate(action).model_dump(mode="json"), status_code=202)
    shown = RequestedActionView.model_validate(action).model_dump(mode="json")
    return JSONResponse(shown, status_code=202, headers={"Cache-Control": "no-store"})


@router.post("/{action_id}/secret", response_model=SecretView)
async def open_action_secret(
    action_id: ActionId, body: SecretRequest, request: Request, response: Response, caller: CallerDep
) -> SecretView:
    """The secret a completed action made for you (a new random AD password), opened with the key
    its request's answer carried; once, and only by the requester."""
    secret = await runtime(request).actions.open_secret(action_id, body.secret_key, caller)
    response.headers["Cache-Control"] = "no-store"
    return SecretView(action_id=action_id, secret=secret)


@router.post("/bulk", status_code=202, response_model=BulkView)
async def request_bulk(
    body: BulkRequest,
    request: Request,
    caller: CallerDep,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_BULK_IDEMPOTENCY_KEY)] = None,
) -> BulkView:
    """Queue one action per distinct target under one batch id."""
    bulk = await runtime(request).actions.request_bulk(
        body.type, body.targets, body.reason, caller, idempotency_key=idempotency_key, instance=body.instance,
        source=ActionSource(body.source), incident=body.incident,
    )  # fmt: skip
    return BulkView.model_validate(bulk)


@router.get("", response_model=ActionPage)
async def list_actions(
    request: Request,
    caller: CallerDep,
    flt: FilterDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR)] = None,
) -> ActionPage:
    """Actions newest first, filtered; follow next_cursor for more."""
    before = _decode_cursor(cursor) if cursor else None
    found = await runtime(request).actions.list_actions(flt, caller, limit=limit, before_id=before)
    next_cursor = _encode_cursor(found[-1].id) if len(found) == limit else None
    return ActionPage(items=[ActionView.model_validate(a) for a in found], next_cursor=next_cursor)


CSV_COLUMNS = (
    "id", "type", "provider", "target", "account", "status", "requested_by", "reason", "batch_id",
    "undoes_action_id", "attempts", "requested_at", "started_at", "finished_at", "result", "error_code",
    "error_message", "provider_request_id", "source", "incident", "incident_link",
)  # fmt: skip


def _csv_row(out: ActionView) -> list[str]:
    data = out.model_dump(mode="json")
    data["account"] = out.account.name if out.account else ""
    data["result"] = (out.result or {}).get("message", "")
    data["error_code"] = out.error.code if out.error else ""
    data["error_message"] = out.error.message if out.error else ""
    return [spreadsheet_safe("" if data.get(c) is None else str(data[c])) for c in CSV_COLUMNS]


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
async def export_actions(
    request: Request,
    caller: CallerDep,
    flt: FilterDep,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
) -> StreamingResponse:
    """Every action matching the filters, streamed page by page as CSV or a JSON array."""
    service = runtime(request).actions
    await service.authorize_read(caller)
    check_filter(flt)  # before the first byte: once streaming, an error can only cut the body

    async def pages() -> AsyncIterator[list[ActionView]]:
        before: int | None = None
        while True:
            page = await service.list_actions(flt, caller, limit=EXPORT_PAGE, before_id=before)
            if not page:
                return
            yield [ActionView.model_validate(a) for a in page]
            before = page[-1].id

    async def as_csv() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)  # every cell quoted, quotes doubled
        writer.writerow(CSV_COLUMNS)
        async for page in pages():
            for out in page:
                writer.writerow(_csv_row(out))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()

    async def as_json() -> AsyncIterator[str]:
        yield "["
        first = True
        async for page in pages():
            for out in page:
                yield ("" if first else ",") + json.dumps(out.model_dump(mode="json"))
                first = False
        yield "]"

    if format == "csv":
        headers = {"Content-Disposition": 'attachment; filename="clampdown-actions.csv"'}
        return StreamingResponse(as_csv(), media_type="text/csv", headers=headers)
    return StreamingResponse(as_json(), media_type="application/json")


@router.get("/{action_id}", response_model=ActionView)
async def get_action_detail(action_id: ActionId, request: Request, caller: CallerDep) -> ActionView:
    """Every field of one action, with its attempts and errors."""
    return ActionView.model_validate(await runtime(request).actions.get(action_id, caller))


@router.post("/{action_id}/cancel", response_model=ActionView)
async def cancel_action(action_id: ActionId, request: Request, caller: CallerDep) -> ActionView:
    """Cancel a queued action."""
    return ActionView.model_validate(await runtime(request).actions.cancel(action_id, caller))


@router.post("/{action_id}/undo", status_code=202, response_model=ActionView)
async def undo_action(
    action_id: ActionId, request: Request, caller: CallerDep, body: UndoRequest | None = None
) -> ActionView:
    """Queue the inverse of a completed action now, restoring the state read before it ran; a timed
    release still waiting for its time is cancelled in its favour."""
    shown = body or UndoRequest()
    undo = await runtime(request).actions.undo(
        action_id, caller, shown.reason, request_approval=shown.request_approval,
        source=ActionSource(shown.source), incident=shown.incident,
    )  # fmt: skip
    return ActionView.model_validate(undo)
