"""Protected accounts: rules that keep actions off administrators, break-glass and service
accounts unless a second person approves. Each refusal names the rule that matched."""

from __future__ import annotations

from dataclasses import dataclass

from clampdown.config import ApprovalSettings, ProtectionSettings
from clampdown.errors import Forbidden
from clampdown.model import Account, AccountState


class ProtectedAccount(Forbidden):
    """The account falls under a protection rule and the request was not made for approval."""

    code = "protected_account"

    def __init__(self, account: str, rule: str) -> None:
        super().__init__(
            f"refused: {account} is a protected account ({rule}); "
            "request it with approval so a second person can approve"
        )
        self.rule = rule


def _as_list(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if value else []


@dataclass(frozen=True)
class ProtectionRules:
    settings: ProtectionSettings

    def rule_for(self, account: Account, state: AccountState | None, target: str | None = None) -> str | None:
        """The first rule the account falls under, in words, or None."""
        names = {account.id, account.name, *(account.attributes.values()), *([target] if target else [])}
        lowered = {n.lower() for n in names if n}
        for protected in self.settings.accounts:
            if protected.lower() in lowered:
                return f"named protected account '{protected}'"
        values = state.values if state else {}
        groups = {g.lower(): g for g in _as_list(values.get("groups"))}
        for group in self.settings.ad_groups:
            if group.lower() in groups:
                return f"member of AD group '{group}'"
        if self.settings.ad_admin_count and values.get("adminCount") == 1:
            return "adminCount=1: a privileged account protected by AdminSDHolder"
        roles = {r.lower() for r in _as_list(values.get("directoryRoles"))}
        for role in self.settings.entra_roles:
            if role.lower() in roles:
                return f"holds Entra ID directory role '{role}'"
        return None

    def guard(self, account: Account, state: AccountState) -> str | None:
        """The engine's check, run on the state read just before an action changes anything."""
        return self.rule_for(account, state)


@dataclass(frozen=True)
class ApprovalRules:
    settings: ApprovalSettings

    def reason_for(
        self, action_type: str, target: str, account: Account | None, playbook: str | None
    ) -> str | None:
        """Why this request needs a second person, or None."""
        if playbook and playbook in self.settings.playbooks:
            return f"playbook '{playbook}' needs approval"
        if action_type in self.settings.actions:
            return f"{action_type} needs approval"
        names = {target.lower(), *((account.name.lower(), account.id.lower()) if account else ())}
        for protected in self.settings.targets:
            if protected.lower() in names:
                return f"actions on '{protected}' need approval"
        return None
