"""Views of dry-run plans and playbook runs."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from clampdown.views.actions import AccountView, ActionView
from clampdown.views.base import View


class PlanItemView(View):
    action: str
    provider: str
    target: str
    account: str | None
    current: str | None
    outcome: str
    linked_by: str | None = None


class PlaybookRunView(View):
    playbook: str
    person: str
    batch_id: str | None
    actions: list[ActionView]
    skipped: list[str]
    plan: list[PlanItemView]
    containment_id: int | None = None
    notes: list[str] = Field(default_factory=list, description="Steps with no inverse under `until`")


class ResidualAccessView(View):
    """One kind of access a contained account may still hold, and until when."""

    provider: str
    account: str
    kind: str = Field(description="access_tokens, refresh_tokens, sessions, app_sessions, kerberos_tickets, "
                      "auth_methods, factors, grants, devices, privileged_groups, or unread")  # fmt: skip
    status: str = Field(description="ended, until (ends by itself at `until`), remains (until someone "
                        "acts) or unknown (the provider could not be read)")  # fmt: skip
    until: datetime | None
    detail: str
    items: list[str] = Field(description="What is left, by name: methods, grants, groups, devices")


class ContainmentView(View):
    """One containment of one person: who, why, which accounts, its state and its actions."""

    id: int
    person: str
    playbook: str
    requested_by: str
    reason: str
    state: str = Field(validation_alias="effective_state", description="awaiting_approval, active, "
                       "partly_contained, released, expired, superseded or cancelled")  # fmt: skip
    created_at: datetime
    until: datetime | None
    accounts: list[AccountView]
    supersedes_id: int | None
    superseded_by_id: int | None
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    notes: list[str] = Field(description="Steps left out or without an inverse; each drift the watch saw")
    incident: str | None = Field(default=None, description="The incident (ticket id); its actions carry it")
    actions: list[ActionView]
    residual: list[ResidualAccessView] | None = Field(
        None, description="For one open containment: what its accounts may still use, read now"
    )


class DriftView(View):
    """A step of an active containment whose effect no longer holds on its account."""

    containment_id: int
    step_id: int
    type: str
    account: str | None
    key: str
    expected: object
    found: object
    note: str


class WatchRoundView(View):
    """One pass of the containment watch: what it read, what drifted, what it applied again."""

    containments: int
    accounts: int
    drifts: list[DriftView]
    reapplied: list[ActionView]
    unreadable: dict[str, str] = Field(description='"provider:id" of each account not read, and why')
