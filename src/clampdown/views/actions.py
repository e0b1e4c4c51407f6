"""Views of an action: its account, the state read before it, its error and its attempts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, Field, computed_field, field_validator

from clampdown.limits import incident_link as link_by
from clampdown.model import AttemptRecord
from clampdown.views.base import View

if TYPE_CHECKING:  # not at run time: a command asking a server loads no settings machinery
    from clampdown.config import ConsoleSettings

# How an incident is linked ([console] incident_link), set once when the process reads its
# settings (use_console_settings): every face's view of an action links its incident the same way.
_link_template: str | None = None


def use_console_settings(settings: ConsoleSettings) -> None:
    """Link incidents with these settings from now on (the server and the CLI call it at start)."""
    global _link_template
    _link_template = settings.incident_link


# Where an action came from, in words (model.ActionSource).
SOURCE_TITLES = {
    "manual": "Manual (CLI or API)",
    "user_page": "User page",
    "side_panel": "Side panel",
    "hunting": "Advanced hunting",
    "playbook": "Playbook",
    "rule": "Detection rule",
    "timed_release": "Timed release",
    "watch": "Containment watch",
}


def source_title(source: object) -> str:
    """'user_page' -> 'User page'; an unknown one keeps its name."""
    value = str(getattr(source, "value", source))
    return SOURCE_TITLES.get(value, value)


def incident_link(incident: str | None) -> str | None:
    """The incident's link by the configured template, or None."""
    return link_by(_link_template, incident)


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
    source: str = Field(
        default="manual",
        description="Where it came from: manual, user_page, side_panel, hunting, playbook, rule, "
        "timed_release or watch",
    )
    incident: str | None = Field(default=None, description="The incident (ticket id) it is part of")
    # Read from the action, shown as one `error` object.
    error_code: str | None = Field(default=None, exclude=True)
    error_message: str | None = Field(default=None, exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error(self) -> ActionErrorView | None:
        if self.error_code is None:
            return None
        return ActionErrorView(code=self.error_code, message=self.error_message)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def incident_link(self) -> str | None:
        """The incident's address in the ticket system ([console] incident_link), if configured."""
        return incident_link(self.incident)

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
