"""`clampdown doctor entra`: what the app registration may do in one tenant, before anything runs.

The app's application permissions are read from its own access token, obtained as the connector
obtains it (MSAL, client credentials): the `roles` claim is what the tenant consented, and `tid`
and `appid` say which tenant and app answered. The token is decoded without checking its signature:
it is our own, just issued over TLS by the identity platform, and only read, never trusted for
access. Each catalog action's calls are compared with the table in permissions.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from clampdown.catalog import all_actions
from clampdown.connectors.entra.connector import EntraConnector
from clampdown.connectors.entra.permissions import ACTION_NEEDS, FEATURE_NEEDS, NOT_CHECKABLE, Need
from clampdown.errors import ClampdownError, TransientError


@dataclass(frozen=True)
class Check:
    """One action (or other use of Graph) and the calls of it the app may not make."""

    name: str
    missing: tuple[Need, ...] = ()
    known: bool = True  # False: the action has no entry in permissions.py, so nothing was checked

    @property
    def ok(self) -> bool:
        return self.known and not self.missing

    def verdict(self) -> str:
        if not self.known:
            return "NOT CHECKED: no entry in connectors/entra/permissions.py"
        if not self.missing:
            return "ok"
        return "missing " + "; ".join(f"{n.wanted()} for {n.call}" for n in self.missing)


@dataclass(frozen=True)
class EntraDoctorReport:
    """Everything `clampdown doctor entra` prints for one tenant; `ok` is the exit status."""

    tenant_id: str
    client_id: str
    token_tenant: str | None = None
    token_app: str | None = None
    app_name: str | None = None
    granted: frozenset[str] = frozenset()
    actions: tuple[Check, ...] = ()
    features: tuple[Check, ...] = ()
    graph_note: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(a.ok for a in self.actions)

    def lines(self) -> list[str]:
        """The report as text, one finding a line."""
        head = f"tenant {self.tenant_id}, app {self.client_id}"
        if self.error:
            return [head, f"  ERROR {self.error}"]
        answered = f"token issued by tenant {self.token_tenant} to app {self.token_app}"
        out = [head, f"  {answered}" + (f" ({self.app_name})" if self.app_name else "")]
        out.append(f"  application permissions granted: {', '.join(sorted(self.granted)) or 'none'}")
        if self.graph_note:
            out.append(f"  note: {self.graph_note}")
        out.append("actions: " + ("OK" if all(a.ok for a in self.actions) else "MISSING PERMISSIONS"))
        out.extend(f"  {a.name:<28} {a.verdict()}" for a in self.actions)
        out.append("other uses (no action needs them):")
        out.extend(f"  {f.name}: {f.verdict()}" for f in self.features)
        out.append("not checked:")
        out.extend(f"  {item}" for item in NOT_CHECKABLE)
        return out


def compare(granted: frozenset[str]) -> tuple[tuple[Check, ...], tuple[Check, ...]]:
    """Each Entra catalog action, and each other use of Graph, against the granted permissions."""
    actions = tuple(
        Check(a.id, tuple(n for n in ACTION_NEEDS[a.id] if not n.met_by(granted)))
        if a.id in ACTION_NEEDS
        else Check(a.id, known=False)
        for a in all_actions()
        if a.provider == "entra"
    )
    features = tuple(
        Check(name, tuple(n for n in needs if not n.met_by(granted))) for name, needs in FEATURE_NEEDS.items()
    )
    return actions, features


async def diagnose_entra(connector: EntraConnector) -> EntraDoctorReport:
    """Get an app token as the connector does, read what it was granted, ask Graph once, compare."""
    settings = connector.settings
    base = EntraDoctorReport(settings.tenant_id, settings.client_id)
    try:
        token = await connector.tokens.token()
    except ClampdownError as exc:
        return EntraDoctorReport(settings.tenant_id, settings.client_id, error=exc.message)
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    granted = frozenset(str(r) for r in claims.get("roles") or ())
    actions, features = compare(granted)
    try:
        # One read, to know Graph answers this token (the identity platform is another service).
        reply = await connector.graph.send("GET", "/users", params={"$top": "1", "$select": "id"})
    except TransientError as exc:
        return EntraDoctorReport(settings.tenant_id, settings.client_id, error=exc.message)
    note = None
    if not reply.ok:
        error = reply.body.get("error", {}) if isinstance(reply.body, dict) else {}
        note = f"Graph answered GET /users with HTTP {reply.status} ({error.get('code', 'no code')})"
    return EntraDoctorReport(
        base.tenant_id,
        base.client_id,
        token_tenant=str(claims.get("tid")),
        token_app=str(claims.get("appid") or claims.get("azp")),
        app_name=claims.get("app_displayname"),
        granted=granted,
        actions=actions,
        features=features,
        graph_note=note,
    )
