"""The one policy gate: for a resolved account and an action, is it allowed, protected, or does it
need a second person, and why. Every path an action can take asks it when the request is made
(single, bulk, playbook, hunting, rules, undo, release, timed release), and the worker asks it
again on the account it reads just before acting.

An approval covers the rules it was asked for (`Action.approval_rules`): a protection rule is
lifted only by an approval requested for that rule, so an approval for "okta.suspend_user needs
approval" never carries a break-glass account past its protection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from clampdown.config import ApprovalSettings, ProtectionSettings
from clampdown.errors import Forbidden
from clampdown.model import Account, AccountState, Action

PROTECTED = "protected account: "  # the prefix of a protection rule among an approval's rules


class ProtectedAccount(Forbidden):
    """The account falls under a protection rule and the request was not made for approval."""

    code = "protected_account"

    def __init__(self, account: str, rule: str, approved_for: Iterable[str] = ()) -> None:
        covered = [r for r in approved_for]
        extra = f"; the approval given covered only: {'; '.join(covered)}" if covered else ""
        super().__init__(
            f"refused: {account} is a protected account ({rule}); "
            f"request it with approval so a second person can approve{extra}"
        )
        self.rule = rule


def _as_list(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)] if value else []


def identifiers(account: Account | None, target: str | None) -> set[str]:
    """Every name an account goes by, lowered: id, name, UPN, SID, login, email, DN, the typed target."""
    names = {target or ""}
    if account is not None:
        names |= {account.id, account.name, *account.attributes.values()}
    return {n.lower() for n in names if n}


@dataclass(frozen=True)
class Verdict:
    """What the rules say about one action on one account."""

    protection: str | None = None  # the protection rule the account falls under, in words
    approvals: tuple[str, ...] = ()  # the approval rules that apply, in words

    @property
    def rules(self) -> tuple[str, ...]:
        """Everything an approval must cover for the action to run."""
        protected = (PROTECTED + self.protection,) if self.protection else ()
        return (*protected, *self.approvals)


@dataclass(frozen=True)
class Hold:
    """The worker's answer when an action may not run now: refused, or back to awaiting approval."""

    refuse: bool
    message: str
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyGate:
    protection: ProtectionSettings
    approvals: ApprovalSettings

    @property
    def approval_lifetime(self) -> timedelta:
        return timedelta(minutes=self.approvals.expires_after_minutes)

    def protection_rule(self, account: Account, state: AccountState | None, target: str | None) -> str | None:
        """The first protection rule the account falls under, in words, or None."""
        lowered = identifiers(account, target)
        for protected in self.protection.accounts:
            if protected.lower() in lowered:
                return f"named protected account '{protected}'"
        values = state.values if state else {}
        groups = {g.lower() for g in _as_list(values.get("groups"))}
        for group in self.protection.ad_groups:
            if group.lower() in groups:
                return f"member of AD group '{group}'"
        if self.protection.ad_admin_count and values.get("adminCount") == 1:
            return "adminCount=1: a privileged account protected by AdminSDHolder"
        roles = {r.lower() for r in _as_list(values.get("directoryRoles"))}
        for role in self.protection.entra_roles:
            if role.lower() in roles:
                return f"holds Entra ID directory role '{role}'"
        return None

    def approval_rules(
        self, action_type: str, account: Account | None, target: str | None, playbook: str | None
    ) -> tuple[str, ...]:
        """Why this action needs a second person, rule by rule; the targets rule matches every
        identifier of the resolved account, not only the text typed."""
        found = []
        if playbook and playbook in self.approvals.playbooks:
            found.append(f"playbook '{playbook}' needs approval")
        if action_type in self.approvals.actions:
            found.append(f"{action_type} needs approval")
        names = identifiers(account, target)
        found += [f"actions on '{t}' need approval" for t in self.approvals.targets if t.lower() in names]
        return tuple(found)

    def person_rules(self, accounts: Iterable[Account], target: str | None) -> tuple[str, ...]:
        """The approval targets that name a person by any identifier of any of their accounts: a
        containment of that person waits for approval on every account, not only the one named."""
        names = identifiers(None, target)
        for account in accounts:
            names |= identifiers(account, target)
        return tuple(f"actions on '{t}' need approval" for t in self.approvals.targets if t.lower() in names)

    def judge(
        self,
        action_type: str,
        account: Account | None,
        state: AccountState | None,
        target: str | None,
        playbook: str | None = None,
    ) -> Verdict:
        """The rules that apply to `action_type` on this account as it is now."""
        protection = self.protection_rule(account, state, target) if account is not None else None
        if account is None and target:
            protection = self.protection_rule(Account("", "", target), None, target)
        return Verdict(protection, self.approval_rules(action_type, account, target, playbook))

    def hold(
        self, action: Action, account: Account, state: AccountState, inherited: Iterable[str] = ()
    ) -> Hold | None:
        """The worker's check on the account just read: None when the action may run now."""
        verdict = self.judge(action.type, account, state, action.target, action.playbook)
        covered = {*(action.approval_rules if action.approved_by else ()), *inherited}
        if verdict.protection and PROTECTED + verdict.protection not in covered:
            error = ProtectedAccount(account.name, verdict.protection, covered)
            return Hold(True, error.message, verdict.rules)
        missing = [r for r in verdict.approvals if r not in covered]
        if missing:
            return Hold(False, "; ".join(missing), verdict.rules)
        return None
