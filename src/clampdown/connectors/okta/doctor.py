"""`clampdown doctor okta`: what the action account may do in one org, before anything runs.

Scopes per action come from the `security` of each operation the connector calls, in Okta's
Management and OAuth documents (shared/contracts/okta/full): reads of users, factors and grants
need okta.users.read; lifecycle, sessions, grants and factor resets okta.users.manage; user risk
okta.userRisk.read / .manage; global token revocation okta.universalLogout.manage.

- An OAuth service app: each scope is asked of the org's token endpoint alone (Okta refuses a
  whole request when one scope is not granted), then compared with the `scopes` the connector is
  configured to ask for: a scope granted but not configured is missing all the same. With
  okta.roles.read granted, the app's admin roles are read (listRolesForClient).
- An API token (SSWS): scopes do not apply; its owner (GET /api/v1/users/me) and the owner's admin
  roles (listAssignedRolesForUser) are read.
Which org answered: GET /.well-known/okta-organization (no credential), and GET /api/v1/org when
the credential may read it. Whether the admin roles allow each action is not judged here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from clampdown.catalog import all_actions
from clampdown.connectors.okta.auth import CLIENT_ASSERTION_TYPE, ServiceAppAuth
from clampdown.connectors.okta.connector import OktaConnector
from clampdown.errors import ActionAccountError, ClampdownError, TransientError

READ, MANAGE = "okta.users.read", "okta.users.manage"
RISK = ("okta.users.read", "okta.userRisk.read", "okta.userRisk.manage")
# Every Okta action of the catalog: the scopes of the operations it calls (finding the user first).
ACTION_SCOPES: dict[str, tuple[str, ...]] = {
    "okta.suspend_user": (READ, MANAGE),
    "okta.unsuspend_user": (READ, MANAGE),
    "okta.deactivate_user": (READ, MANAGE),
    "okta.clear_sessions": (READ, MANAGE),
    "okta.revoke_grants": (READ, MANAGE),
    "okta.reset_factors": (READ, MANAGE),
    "okta.expire_password": (READ, MANAGE),
    "okta.set_risk": RISK,
    "okta.clear_risk": RISK,
    "okta.universal_logout": (READ, "okta.universalLogout.manage"),
}
# Other uses: no action fails without them.
FEATURE_SCOPES: dict[str, tuple[str, ...]] = {
    "hunting: System Log pull": ("okta.logs.read",),
    "residual access: custom authorization servers' token lifetimes": ("okta.authorizationServers.read",),
}
# Asked only so doctor can say more: the app's admin roles, the org's name.
ROLES_SCOPE, ORG_SCOPE = "okta.roles.read", "okta.orgs.read"
NOT_CHECKABLE = (
    "whether the admin roles allow each action (Okta's role permissions are not read here): the "
    "action account needs a role that manages the users it acts on",
    "features of the org: Identity Threat Protection (for okta.set_risk, okta.clear_risk) and "
    "Universal Logout (for okta.universal_logout)",
)


@dataclass(frozen=True)
class ScopeCheck:
    """One action (or other use) and the scopes it lacks: not granted to the app, or not asked for."""

    name: str
    not_granted: tuple[str, ...] = ()
    not_configured: tuple[str, ...] = ()
    known: bool = True

    @property
    def ok(self) -> bool:
        return self.known and not self.not_granted and not self.not_configured

    def verdict(self) -> str:
        if not self.known:
            return "NOT CHECKED: no entry in connectors/okta/doctor.py"
        parts = []
        if self.not_granted:
            parts.append(f"{', '.join(self.not_granted)} (grant to the app in Okta: Okta API Scopes)")
        if self.not_configured:
            parts.append(f"{', '.join(self.not_configured)} (granted; add to scopes in the config)")
        return "missing " + "; ".join(parts) if parts else "ok"


@dataclass(frozen=True)
class OktaDoctorReport:
    """Everything `clampdown doctor okta` prints for one org; `ok` is the exit status."""

    org_url: str
    credential: str
    org: str | None = None
    scopes: dict[str, bool] = field(default_factory=dict)  # scope -> granted (service app only)
    configured: tuple[str, ...] = ()
    roles: tuple[str, ...] | None = None  # None: could not be read
    roles_note: str | None = None
    actions: tuple[ScopeCheck, ...] = ()
    features: tuple[ScopeCheck, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.roles != () and all(a.ok for a in self.actions)

    def lines(self) -> list[str]:
        """The report as text, one finding a line."""
        out = [f"org {self.org_url}: {self.credential}"]
        if self.error:
            return [*out, f"  ERROR {self.error}"]
        out.append(f"  answered: {self.org or 'unknown'}")
        if self.scopes:
            granted = [s for s, ok in self.scopes.items() if ok]
            refused = [s for s, ok in self.scopes.items() if not ok]
            out.append(f"  scopes granted to the app: {', '.join(granted) or 'none'}")
            out.append(f"  scopes not granted: {', '.join(refused) or 'none'}")
            out.append(f"  scopes the connector asks for (config): {', '.join(self.configured)}")
        if self.roles is None:
            out.append(f"  admin roles: not read ({self.roles_note})")
        elif not self.roles:
            out.append("  admin roles: NONE: Okta refuses every management call without an admin role")
        else:
            out.append(f"  admin roles: {', '.join(self.roles)}")
        out.append("actions: " + ("OK" if all(a.ok for a in self.actions) else "MISSING SCOPES"))
        out.extend(f"  {a.name:<24} {a.verdict()}" for a in self.actions)
        out.append("other uses (no action needs them):")
        out.extend(f"  {f.name}: {f.verdict()}" for f in self.features)
        out.append("not checked:")
        out.extend(f"  {item}" for item in NOT_CHECKABLE)
        return out


def compare(granted: set[str] | None, configured: set[str]) -> tuple[tuple[ScopeCheck, ...], ...]:
    """Each Okta action and other use against the scopes; `granted` None: an API token (no scopes)."""

    def check(name: str, needs: tuple[str, ...] | None) -> ScopeCheck:
        if needs is None:
            return ScopeCheck(name, known=False)
        if granted is None:
            return ScopeCheck(name)
        wanted = tuple(dict.fromkeys(needs))
        return ScopeCheck(
            name,
            tuple(s for s in wanted if s not in granted),
            tuple(s for s in wanted if s in granted and s not in configured),
        )

    actions = tuple(check(a.id, ACTION_SCOPES.get(a.id)) for a in all_actions() if a.provider == "okta")
    features = tuple(check(name, needs) for name, needs in FEATURE_SCOPES.items())
    return actions, features


def all_scopes() -> list[str]:
    """Every scope an action or other use needs, then those doctor reads with, once each."""
    needed = [s for needs in (*ACTION_SCOPES.values(), *FEATURE_SCOPES.values()) for s in needs]
    return list(dict.fromkeys([*needed, ROLES_SCOPE, ORG_SCOPE]))


async def diagnose_okta(connector: OktaConnector) -> OktaDoctorReport:
    """Read which org answers, what the credential was granted, and compare with each action."""
    settings = connector.settings
    auth = connector.auth
    is_app = isinstance(auth, ServiceAppAuth)
    credential = f"OAuth service app {settings.client_id}" if is_app else "API token (SSWS)"
    try:
        org = await _org_metadata(connector)
        if isinstance(auth, ServiceAppAuth):
            return await _diagnose_app(connector, auth, credential, org)
        return await _diagnose_token(connector, credential, org)
    except ClampdownError as exc:
        return OktaDoctorReport(settings.org_url, credential, error=exc.message)


async def _org_metadata(connector: OktaConnector) -> str:
    # Asked without a credential (none is needed): the connector's own token may be refused.
    status, body = await _bearer_get(connector, "/.well-known/okta-organization", None)
    if status != 200 or not isinstance(body, dict):
        return f"no org metadata (HTTP {status})"
    pipeline = {"idx": "Identity Engine", "v1": "Classic Engine"}.get(str(body.get("pipeline")))
    return f"org id {body.get('id')}" + (f", {pipeline}" if pipeline else "")


def _org_name(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    named = [str(body[k]) for k in ("companyName", "subdomain") if body.get(k)]
    return f" ({', '.join(named)})" if named else ""


async def _diagnose_token(connector: OktaConnector, credential: str, org: str) -> OktaDoctorReport:
    settings, client = connector.settings, connector.client
    me = await client.request("GET", "/api/v1/users/me")
    if me.status != 200 or not isinstance(me.body, dict):
        return OktaDoctorReport(
            settings.org_url, credential, error=f"Okta refused the API token's owner: {me.error_text}"
        )
    login = (me.body.get("profile") or {}).get("login") or me.body.get("id")
    roles_answer = await client.request("GET", f"/api/v1/users/{quote(str(me.body['id']), safe='')}/roles")
    roles, note = _roles(roles_answer.status, roles_answer.body, roles_answer.error_text)
    about = await client.request("GET", "/api/v1/org")
    actions, features = compare(None, set())
    return OktaDoctorReport(
        settings.org_url,
        f"{credential} of {login}; scopes do not apply to an API token",
        org=org + (_org_name(about.body) if about.status == 200 else ""),
        roles=roles,
        roles_note=note,
        actions=actions,
        features=features,
    )


def _roles(status: int, body: Any, error: str) -> tuple[tuple[str, ...] | None, str | None]:
    if status == 200 and isinstance(body, list):
        return tuple(sorted({str(r.get("type")) for r in body if isinstance(r, dict)})), None
    return None, f"HTTP {status}: {error}"


async def _token(connector: OktaConnector, auth: ServiceAppAuth, scope: str) -> str | None:
    """An access token for `scope` alone; None when the org does not grant it to the app."""
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": auth.client_assertion(),
    }
    try:
        response = await connector.client.http.post(
            auth.token_url, data=form, headers={"Accept": "application/json"}
        )
    except httpx.TransportError as exc:
        raise TransientError(
            f"Okta's token endpoint did not answer: {exc}", code="okta_unreachable"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 200 and "access_token" in body:
        return str(body["access_token"])
    if response.status_code == 400 and body.get("error") == "invalid_scope":
        return None
    reason = body.get("error_description") or body.get("error") or f"HTTP {response.status_code}"
    raise ActionAccountError(f"Okta refused a token to service app {auth.client_id}: {reason}")


async def _bearer_get(connector: OktaConnector, path: str, token: str | None) -> tuple[int, Any]:
    """GET `path` on the org with an access token of doctor's own (one scope), not the connector's."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = await connector.client.http.get(path, headers=headers)
    except httpx.TransportError as exc:
        raise TransientError(f"Okta did not answer GET {path}: {exc}", code="okta_unreachable") from None
    try:
        return response.status_code, response.json() if response.content else None
    except ValueError:
        return response.status_code, None


async def _diagnose_app(
    connector: OktaConnector, auth: ServiceAppAuth, credential: str, org: str
) -> OktaDoctorReport:
    settings = connector.settings
    tokens = {scope: await _token(connector, auth, scope) for scope in all_scopes()}
    granted = {scope for scope, token in tokens.items() if token is not None}
    roles: tuple[str, ...] | None = None
    note: str | None = f"{ROLES_SCOPE} is not granted to the app, so its admin roles cannot be read"
    roles_token, org_token = tokens[ROLES_SCOPE], tokens[ORG_SCOPE]
    if roles_token is not None:
        path = f"/oauth2/v1/clients/{quote(auth.client_id, safe='')}/roles"
        status, body = await _bearer_get(connector, path, roles_token)
        roles, note = _roles(status, body, f"HTTP {status}")
    name = ""
    if org_token is not None:
        status, body = await _bearer_get(connector, "/api/v1/org", org_token)
        name = _org_name(body) if status == 200 else ""
    actions, features = compare(granted, set(settings.scopes))
    return OktaDoctorReport(
        settings.org_url,
        credential,
        org=org + name,
        scopes={s: s in granted for s in all_scopes() if s not in (ROLES_SCOPE, ORG_SCOPE)},
        configured=tuple(settings.scopes),
        roles=roles,
        roles_note=note,
        actions=actions,
        features=features,
    )
