"""What the user page and the side panel show of a person: one card per account, read for people."""

from __future__ import annotations

from dataclasses import dataclass, field

from clampdown.catalog import ActionDefinition
from clampdown.connectors.instances import directory_title
from clampdown.model import AccountState, Action, StateValue
from clampdown.services.people import LinkedAccount, Person
from clampdown.web.person_events import RecentEvents
from clampdown.web.templating import when

# The values worth reading at a glance, in words; every value stays under "All values".
_KEY_FACTS: dict[str, tuple[tuple[str, str], ...]] = {
    "ad": (("password_last_set_at", "Password last set"), ("locked_out_at", "Locked out at"),
           ("flags", "Account flags")),
    "entra": (("riskState", "Risk state"), ("onPremisesSyncEnabled", "Synced from AD"),
              ("signInSessionsValidFromDateTime", "Sessions valid from")),
    "okta": (("statusChanged", "Status changed"), ("lastUpdated", "Last updated")),
}  # fmt: skip
_TIMES = {"password_last_set_at", "locked_out_at", "signInSessionsValidFromDateTime", "statusChanged",
          "lastUpdated"}  # fmt: skip


@dataclass(frozen=True)
class Badge:
    """A short status word; `tone` picks its colour (ok, bad, warn, info)."""

    text: str
    tone: str


@dataclass(frozen=True)
class ActionChoice:
    """One entry of an account's actions menu; everything the confirmation needs to name."""

    id: str
    title: str
    description: str
    warning: str | None
    account_id: str
    account_name: str
    provider: str
    instance: str = ""  # the directory it acts in; empty for the one named after its kind

    @property
    def provider_title(self) -> str:
        return directory_title(self.provider, self.instance, long=True)


@dataclass(frozen=True)
class AccountView:
    provider: str
    account_id: str
    name: str
    badges: list[Badge]
    risk: str | None
    last_sign_in: str | None
    groups: list[str]
    facts: list[tuple[str, str]]
    details: list[tuple[str, str]]
    state_error: str | None
    actions: list[ActionChoice] = field(default_factory=list)
    linked_by: str = ""  # how the account was linked into the person, in words
    where: str = ""  # the directory it lives in ([providers.NAME])

    @property
    def provider_title(self) -> str:
        return directory_title(self.provider, self.where, long=True)


@dataclass(frozen=True)
class PersonView:
    reference: str
    title: str
    accounts: list[AccountView]
    unreachable: dict[str, str]
    recent_actions: list[Action]
    events: RecentEvents | None = None
    not_linked: list[str] = field(default_factory=list)  # accounts met on the way, not linked

    @property
    def any_actions(self) -> bool:
        return any(a.actions for a in self.accounts)


def _badges(provider: str, state: AccountState) -> list[Badge]:
    values = state.values
    badges: list[Badge] = []
    if provider == "okta" and state.status:
        tone = "ok" if state.status == "ACTIVE" else "bad" if not state.enabled else "warn"
        badges.append(Badge(state.status.replace("_", " ").lower(), tone))
    elif state.enabled is not None:
        badges.append(Badge("enabled", "ok") if state.enabled else Badge("disabled", "bad"))
    if values.get("locked_out"):
        badges.append(Badge("locked out", "bad"))
    if values.get("must_change_password"):
        badges.append(Badge("must change password", "warn"))
    if values.get("password_expired"):
        badges.append(Badge("password expired", "warn"))
    return badges


def _facts(provider: str, values: dict[str, StateValue]) -> list[tuple[str, str]]:
    facts = []
    for key, label in _KEY_FACTS.get(provider, ()):
        value = values.get(key)
        if value is None or value == "" or value == []:
            continue
        facts.append((label, when(str(value)) if key in _TIMES else _text(value)))
    return facts


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if value is None:
        return "—"
    return str(value)


HYBRID_WARNING = (
    "This account is synchronized from on-premises Active Directory: the next directory sync "
    "enables it again in Entra ID unless the AD account is disabled too."
)


def _warning(definition: ActionDefinition, state: AccountState | None) -> str | None:
    """The catalog's warning, or the hybrid one when a cloud-only suspend would not last."""
    synced = state is not None and bool(state.values.get("onPremisesSyncEnabled"))
    if definition.id == "entra.suspend_user" and synced:
        return HYBRID_WARNING
    return definition.warning


def _choices(linked: LinkedAccount) -> list[ActionChoice]:
    account = linked.account
    return [
        ActionChoice(
            d.id,
            d.title,
            d.description,
            _warning(d, linked.state),
            account.id,
            account.name,
            d.provider,
            account.where,
        )
        for d in linked.actions
        if _applies(d, linked.state)
    ]


_OKTA_EVICTION = frozenset(
    {"clear_sessions", "revoke_grants", "reset_factors", "expire_password", "set_risk", "universal_logout"}
)


def _applies(definition: ActionDefinition, state: AccountState | None) -> bool:
    """Offer an action only where it would change something; an unknown state offers everything."""
    if state is None or state.enabled is None:
        return True
    method = definition.method
    if definition.provider == "okta":
        okta_rules = {
            "suspend_user": state.status == "ACTIVE",
            "unsuspend_user": state.status == "SUSPENDED",
            "deactivate_user": state.status != "DEPROVISIONED",
            "set_risk": state.values.get("riskLevel") != "HIGH",
            "clear_risk": state.values.get("riskLevel") in (None, "HIGH"),
        }
        # A deactivated user has no session, token, grant or factor left to take from it.
        return okta_rules.get(method, True) and not (
            method in _OKTA_EVICTION and state.status == "DEPROVISIONED"
        )
    if method in ("enable_user", "unsuspend_user"):
        return not state.enabled
    if method in ("disable_user", "suspend_user"):
        return state.enabled
    return True


def account_view(linked: LinkedAccount) -> AccountView:
    """One account's card: status words, risk, last sign-in, groups, then every other value."""
    state = linked.state
    values = state.values if state else {}
    groups = values.get("groups")
    risk = values.get("riskLevel")
    return AccountView(
        provider=linked.account.provider,
        account_id=linked.account.id,
        name=linked.account.name,
        badges=_badges(linked.account.provider, state) if state else [],
        risk=str(risk) if risk else None,
        last_sign_in=str(values["last_logon_at"]) if values.get("last_logon_at") else None,
        groups=[str(g) for g in groups] if isinstance(groups, list) else [],
        facts=_facts(linked.account.provider, values),
        details=[(k, _text(v)) for k, v in values.items()],
        state_error=linked.state_error,
        actions=_choices(linked),
        linked_by=linked.linked_by,
        where=linked.account.where,
    )


def person_view(
    person: Person, recent_actions: list[Action], events: RecentEvents | None = None
) -> PersonView:
    """The person as the console shows them; titled by the first account's name."""
    accounts = [account_view(la) for la in person.accounts]
    title = accounts[0].name if accounts else person.reference
    return PersonView(
        person.reference, title, accounts, person.unreachable, recent_actions, events, person.not_linked
    )
