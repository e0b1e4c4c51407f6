"""The view of one person across providers: each account, its state and the allowed actions."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from clampdown.catalog import ActionDefinition
from clampdown.connectors.base import FoundUser
from clampdown.connectors.instances import directory_title
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


class FoundAccountView(View):
    """One account a people search found."""

    account: AccountView
    directory: str = Field(description="The directory it lives in, in words: 'Entra ID (emea-entra)'")
    display_name: str
    email: str | None

    @model_validator(mode="before")
    @classmethod
    def _from_found(cls, value: Any) -> Any:
        if isinstance(value, FoundUser):
            where = value.account
            title = directory_title(where.provider, where.instance, long=True)
            return {"account": where, "directory": title, "display_name": value.display_name,
                    "email": value.email}  # fmt: skip
        return value


class PersonMatchView(View):
    """One person a search found: their accounts, linked by strong anchors only."""

    title: str
    reference: str = Field(description="What opens the person: /api/v1/users/{reference}")
    rank: str = Field(description="exact, prefix or contains: how well the query matched")
    accounts: list[FoundAccountView]

    @field_validator("rank", mode="before")
    @classmethod
    def _rank_word(cls, value: Any) -> Any:
        return getattr(value, "word", value)


class PeopleSearchView(View):
    """One page of the people matching a fragment, and which directories answered."""

    query: str
    people: list[PersonMatchView]
    page: int
    page_size: int
    total: int = Field(description="People found in what the directories returned")
    more: bool = Field(description="A next page exists")
    searched: list[str] = Field(description="The directories asked")
    still_answering: list[str] = Field(
        description="Directories that had not answered in time: ask again to see their people"
    )
    failed: dict[str, str] = Field(description="Directory -> why it could not answer")
    not_searchable: list[str] = Field(description="Directories whose connector cannot search")
