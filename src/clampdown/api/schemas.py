"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from clampdown.limits import (
    MAX_ACTION_TYPE,
    MAX_BULK,
    MAX_PASSWORD,
    MAX_REASON,
    MAX_TARGET,
    MAX_USERNAME,
)
from clampdown.model import Action


def _no_nul(value: str) -> str:
    # The schema's share of the rule in clampdown.limits: bodies such as a sign-in never reach a
    # service that checks text, and PostgreSQL cannot store NUL.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for machines: invalid_input, not_found, permission_denied, ...")
    message: str = Field(description="For people; names the field at fault")
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Text = Field(
        description="Action id from the catalog, e.g. okta.suspend_user", max_length=MAX_ACTION_TYPE
    )
    target: Text = Field(description="The user: name, UPN, email or provider id", max_length=MAX_TARGET)
    reason: Text = Field(description="Why; recorded with the action", max_length=MAX_REASON)
    request_approval: bool = Field(default=False, description="Wait for a second person to approve")
    until: datetime | None = Field(default=None, description="Undo automatically at this time")


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Text = Field(max_length=MAX_ACTION_TYPE)
    targets: list[Annotated[Text, Field(max_length=MAX_TARGET)]] = Field(min_length=1, max_length=MAX_BULK)
    reason: Text = Field(max_length=MAX_REASON)


class UndoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(default=None, max_length=MAX_REASON)


class AccountOut(BaseModel):
    provider: str
    id: str
    name: str
    attributes: dict[str, str]


class ActionError(BaseModel):
    code: str
    message: str | None


class ActionOut(BaseModel):
    id: int
    type: str
    provider: str
    target: str
    account: AccountOut | None
    status: str
    requested_by: str
    reason: str
    idempotency_key: str | None
    batch_id: str | None
    undoes_action_id: int | None
    attempts: int
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: ActionError | None
    state_before: dict[str, Any] | None
    provider_request_id: str | None
    history: list[dict[str, Any]]
    after_action_id: int | None = None
    playbook: str | None = None
    approval_reason: str | None = None
    approved_by: str | None = None

    @classmethod
    def of(cls, a: Action) -> ActionOut:
        return cls(
            id=a.id,
            type=a.type,
            provider=a.provider,
            target=a.target,
            account=AccountOut(**a.account.to_json()) if a.account else None,
            status=a.status.value,
            requested_by=a.requested_by,
            reason=a.reason,
            idempotency_key=a.idempotency_key,
            batch_id=a.batch_id,
            undoes_action_id=a.undoes_action_id,
            attempts=a.attempts,
            requested_at=a.requested_at,
            started_at=a.started_at,
            finished_at=a.finished_at,
            result=a.result,
            error=ActionError(code=a.error_code, message=a.error_message) if a.error_code else None,
            state_before=a.state_before.to_json() if a.state_before else None,
            provider_request_id=a.provider_request_id,
            history=[h.to_json() for h in a.history],
            after_action_id=a.after_action_id,
            playbook=a.playbook,
            approval_reason=a.approval_reason,
            approved_by=a.approved_by,
        )


class ActionPage(BaseModel):
    items: list[ActionOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class BulkOut(BaseModel):
    batch_id: str
    actions: list[ActionOut]


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Text = Field(max_length=MAX_USERNAME)
    password: Text = Field(max_length=MAX_PASSWORD)


class Me(BaseModel):
    username: str
    roles: list[str]
    permissions: list[str]
    channel: str
    csrf_token: str | None = None
