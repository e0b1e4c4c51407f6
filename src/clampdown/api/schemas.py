"""Request bodies, errors and envelopes of the REST API; what it returns of a domain object is its
view (clampdown.views)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from clampdown.views import ActionView


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store NUL in text; refuse it here with a clear message, not a 500.
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

    type: Text = Field(description="Action id from the catalog, e.g. okta.suspend_user", max_length=64)
    target: Text = Field(description="The user: name, UPN, email or provider id", max_length=512)
    reason: Text = Field(description="Why; recorded with the action", max_length=4000)
    request_approval: bool = Field(default=False, description="Wait for a second person to approve")
    until: datetime | None = Field(default=None, description="Undo automatically at this time")


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Text = Field(max_length=64)
    targets: list[Annotated[Text, Field(max_length=512)]] = Field(min_length=1, max_length=100_000)
    reason: Text = Field(max_length=4000)


class UndoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(default=None, max_length=4000)


class ActionPage(BaseModel):
    items: list[ActionView]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Text = Field(max_length=256)
    password: Text = Field(max_length=1024)


class Me(BaseModel):
    username: str
    roles: list[str]
    permissions: list[str]
    channel: str
    csrf_token: str | None = None
