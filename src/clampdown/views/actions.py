"""Views of an action: its account, the state read before it, its error and its attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, Field, computed_field, field_validator

from clampdown.model import AttemptRecord
from clampdown.views.base import View


class AccountView(View):
    provider: str
    id: str
    name: str
    attributes: dict[str, str]
    linked_by: str | None = Field(default=None, description="How this account was linked to the person")
    instance: str = Field(
        validation_alias=AliasChoices("where", "instance"),
        description="The configured directory it lives in ([providers.NAME])",
    )


class AccountStateView(View):
    enabled: bool | None
    status: str | None
    values: dict[str, Any]


class ActionErrorView(View):
    code: str
    message: str | None


class ActionView(View):
    id: int
    type: str
    provider: str
    target: str
    account: AccountView | None
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
    state_before: AccountStateView | None
    provider_request_id: str | None
    history: list[dict[str, Any]]
    after_action_id: int | None = None
    playbook: str | None = None
    approval_reason: str | None = None
    approved_by: str | None = None
    approval_rules: list[str] = Field(default_factory=list, description="The rules its approval covers")
    containment_id: int | None = None
    containment_role: str | None = Field(default=None, description="step, timer, release or undo")
    instance: str | None = Field(default=None, description="The configured directory it runs against")
    cancel_requested_by: str | None = Field(
        default=None, description="Who asked to cancel it while an attempt ran; it is not retried"
    )
    # Read from the action, shown as one `error` object.
    error_code: str | None = Field(default=None, exclude=True)
    error_message: str | None = Field(default=None, exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error(self) -> ActionErrorView | None:
        if self.error_code is None:
            return None
        return ActionErrorView(code=self.error_code, message=self.error_message)

    @field_validator("history", mode="before")
    @classmethod
    def _attempts(cls, value: Any) -> Any:
        # Attempt times stay as the action center stores them (ISO 8601 with +00:00).
        return [h.to_json() if isinstance(h, AttemptRecord) else h for h in value]


class RefusedTargetView(View):
    """A target of a bulk that was not queued, and why."""

    target: str
    reason: str


class BulkView(View):
    """A bulk request: its batch id, one action per distinct target queued, and the targets
    refused before queueing (in no directory, or in several, when none was named)."""

    batch_id: str
    actions: list[ActionView]
    refused: list[RefusedTargetView] = []
