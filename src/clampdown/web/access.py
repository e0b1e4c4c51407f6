"""Who is looking at a console page: the session cookie, as for the API; no cookie, the sign-in page."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse

from clampdown.api.auth import SESSION_COOKIE, runtime
from clampdown.auth.principal import Principal
from clampdown.auth.service import Unauthenticated
from clampdown.permissions import HUNTING_READ, RESPONSE_READ


@dataclass(frozen=True)
class Viewer:
    """The signed-in analyst and the CSRF token their page scripts echo on every POST."""

    principal: Principal
    csrf_token: str

    @property
    def username(self) -> str:
        return self.principal.username

    @property
    def role_text(self) -> str:
        return ", ".join(sorted(self.principal.roles)) or "no role"

    @property
    def scope_text(self) -> str | None:
        """'in emea-ad, emea-okta' for a user limited to some directories; None for every one."""
        scope = self.principal.scope
        return None if scope is None else "in " + ", ".join(sorted(scope))

    @property
    def may_read_actions(self) -> bool:
        return self.principal.has(RESPONSE_READ)

    @property
    def may_hunt(self) -> bool:
        return self.principal.has(HUNTING_READ)


class SignInRequired(Exception):
    """Raised by a page dependency; the app turns it into a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


async def viewer(request: Request) -> Viewer:
    """The page's viewer from the session cookie (GET only: pages never change anything)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    auth = runtime(request).auth
    try:
        principal = await auth.authenticate_session(session_id, None, unsafe_method=False)
    except Unauthenticated:
        raise SignInRequired(request.url.path) from None
    csrf = await auth.csrf_for(session_id or "")
    if csrf is None:
        raise SignInRequired(request.url.path)
    return Viewer(principal, csrf)


def sign_in_redirect(exc: SignInRequired) -> RedirectResponse:
    """To the sign-in page, coming back to the page asked for afterwards."""
    return RedirectResponse(f"/login?next={quote(exc.next_url, safe='/')}", status_code=303)
