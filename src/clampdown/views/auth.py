"""Views of API tokens as `clampdown tokens` prints them; never the token's hash."""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, Field

from clampdown.views.base import View


class IssuedTokenView(View):
    """A new token: shown once."""

    id: int
    token: str
    expires_at: datetime | None


class TokenView(View):
    id: int
    user: str = Field(validation_alias=AliasChoices("username", "user"))
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    service: bool = False  # keeps working without its single sign-on user's session
