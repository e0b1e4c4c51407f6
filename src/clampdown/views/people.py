"""The view of one person across providers: each account, its state and the allowed actions."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from clampdown.catalog import ActionDefinition
from clampdown.views.actions import AccountStateView, AccountView
from clampdown.views.base import View


class LinkedAccountView(View):
    account: AccountView
    state: AccountStateView | None
    state_error: str | None
    linked_by: str = Field(description="The strong anchor that links this account to the person")
    allowed_actions: list[str] = Field(validation_alias="actions")

    @field_validator("allowed_actions", mode="before")
    @classmethod
    def _action_ids(cls, value: Any) -> Any:
        return [d.id if isinstance(d, ActionDefinition) else d for d in value]


class PersonView(View):
    reference: str
    accounts: list[LinkedAccountView]
    unreachable: dict[str, str]
    not_linked: list[str] = Field(description="Accounts a provider found that no strong anchor links")
