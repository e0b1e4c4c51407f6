"""Request bodies, errors and envelopes of the REST API; what it returns of a domain object is its
view (clampdown.views)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from clampdown.limits import (
    MAX_ACTION_TYPE,
    MAX_BULK,
    MAX_INCIDENT,
    MAX_INSTANCE,
    MAX_NAME,
    MAX_PASSWORD,
    MAX_REASON,
    MAX_TARGET,
    MAX_USERNAME,
)
from clampdown.views import ActionView


def _no_nul(value: str) -> str:
    # The schema's share of the rule in clampdown.limits: bodies such as a sign-in never reach a
    # service that checks text, and PostgreSQL cannot store NUL.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]

# Where a request came from, as a client may state it (model.CLIENT_SOURCES); playbook, rule,
# timed_release and watch are set by Clampdown itself.
ClientSource = Annotated[
    Literal["manual", "user_page", "side_panel", "hunting"],
    Field(description="Where the request came from: manual (default), user_page, side_panel or hunting"),
]
INCIDENT_FIELD = Field(
    default=None,
    max_length=MAX_INCIDENT,
    description="The incident it is part of: a ticket id such as INC-42 (letters, digits, . _ : # / -)",
)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for machines: invalid_input, not_found, permission_denied, ...")
    message: str = Field(description="For people; names the field at fault")
    field: str | None = None
    line: int | None = Field(None, description="A query's mistake: its line (1-based)")
    column: int | None = Field(None, description="A query's mistake: its column (1-based)")


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
    instance: Text | None = Field(
        default=None,
        max_length=MAX_INSTANCE,
        description="The configured directory to act in ([providers.NAME]); needed only when several "
        "of the action's kind are configured and the target is in more than one",
    )
    source: ClientSource = "manual"
    incident: Text | None = INCIDENT_FIELD


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Text = Field(max_length=MAX_ACTION_TYPE)
    targets: list[Annotated[Text, Field(max_length=MAX_TARGET)]] = Field(min_length=1, max_length=MAX_BULK)
    reason: Text = Field(max_length=MAX_REASON)
    instance: Text | None = Field(
        default=None,
        max_length=MAX_INSTANCE,
        description="The configured directory to act in; needed when several of the action's kind are",
    )
    source: ClientSource = "manual"
    incident: Text | None = INCIDENT_FIELD


class UndoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text | None = Field(default=None, max_length=MAX_REASON)
    request_approval: bool = Field(
        default=False, description="Ask a second person (needed on a protected account)"
    )
    source: ClientSource = "manual"
    incident: Text | None = Field(
        default=None, max_length=MAX_INCIDENT, description="The incident; default: the undone action's"
    )


class ActionPage(BaseModel):
    items: list[ActionView]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at the end")


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Text = Field(max_length=MAX_USERNAME)
    password: Text = Field(max_length=MAX_PASSWORD)


class OwnToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(max_length=MAX_NAME, description="What the token is for, e.g. 'cli on laptop-42'")
    expires_in_days: int = Field(30, ge=1, le=365, description="The token ends after this many days")


class SealedOwnToken(OwnToken):
    public_key: Text = Field(
        min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]{43}$",
        description="The CLI's one-time X25519 public key (base64url): only it can open the token",
    )  # fmt: skip


class SealedToken(BaseModel):
    sealed: str = Field(
        description="The new token, sealed to public_key under the context 'clampdown-cli-login'"
    )
    expires_at: datetime | None


class Me(BaseModel):
    username: str
    roles: list[str]
    permissions: list[str]
    channel: str
    directories: list[str] | None = Field(
        None, description="The directories the roles are limited to; null: every directory"
    )
    csrf_token: str | None = None
