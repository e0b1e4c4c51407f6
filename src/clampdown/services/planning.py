"""Dry-runs: what an action, bulk or playbook would change, on which accounts, and what would be
refused and why, with nothing changed anywhere."""

from __future__ import annotations

from dataclasses import dataclass

from clampdown.catalog import ActionDefinition
from clampdown.model import Account, AccountState


@dataclass(frozen=True)
class PlanItem:
    """One step of a plan: the account it would touch and what would happen."""

    action: str
    provider: str
    target: str
    account: str | None
    current: str | None  # the state the action looks at, now
    outcome: str  # would change / already / refused / needs approval / no account


def _read(state: AccountState, key: str) -> object:
    if key == "enabled":
        return state.enabled
    if key == "status":
        return state.status
    return state.values.get(key.removeprefix("values."))


def predict(definition: ActionDefinition, state: AccountState | None) -> tuple[str | None, str]:
    """(current value in words, what the action would do)."""
    if definition.effect is None:
        return None, f"would run {definition.id} (it always acts)"
    key, value = definition.effect
    if state is None:
        return None, f"would set {key} to {value} (state unreadable now)"
    current = _read(state, key)
    if current == value:
        return f"{key}={current}", "already in the requested state: nothing would change"
    return f"{key}={current}", f"would change {key} from {current} to {value}"


def plan_item(
    definition: ActionDefinition,
    target: str,
    account: Account | None,
    state: AccountState | None,
    refusal: str | None = None,
) -> PlanItem:
    current, outcome = predict(definition, state)
    return PlanItem(
        action=definition.id,
        provider=definition.provider,
        target=target,
        account=account.name if account else None,
        current=current,
        outcome=refusal or outcome,
    )
