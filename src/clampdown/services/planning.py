"""Dry-runs: what an action, bulk or playbook would change, on which accounts, and what would be
refused and why, with nothing changed anywhere."""

from __future__ import annotations

from dataclasses import dataclass

from clampdown.auth.principal import Principal
from clampdown.catalog import ActionDefinition, get_action
from clampdown.connectors.instances import instances_of
from clampdown.errors import AccountNotFound, IdentityConflict, InvalidInput, NotFound, TransientError
from clampdown.limits import MAX_PLAN_TARGETS
from clampdown.model import Account, AccountState
from clampdown.policy import ProtectedAccount
from clampdown.services.actions import ActionService, clean_reason, clean_target


@dataclass(frozen=True)
class PlanItem:
    """One step of a plan: the account it would touch and what would happen."""

    action: str
    provider: str
    target: str
    account: str | None
    current: str | None  # the state the action looks at, now
    outcome: str  # would change / already / refused / needs approval / no account
    linked_by: str | None = None  # how the account was linked into the person (playbooks)


def predict(definition: ActionDefinition, state: AccountState | None) -> tuple[str | None, str]:
    """(current value in words, what the action would do)."""
    if definition.effect is None:
        return None, f"would run {definition.id} (it always acts)"
    key, value = definition.effect
    if state is None:
        return None, f"would set {key} to {value} (state unreadable now)"
    current = state.value_at(key)
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
        linked_by=account.linked_by if account else None,
    )


async def plan_actions(
    service: ActionService,
    type_id: str,
    targets: list[str],
    reason: str | None,
    principal: Principal,
    instance: str | None = None,
) -> list[PlanItem]:
    """What requesting `type_id` on each target would do now; nothing is written or changed.
    `instance`: the directory to act in, where several of the action's kind are configured."""
    definition = get_action(type_id)
    await service.authorize(principal, definition, f"{len(targets)} targets")
    clean_reason(definition, reason)
    seen, instance = await service.directory_to_act_in(principal, definition, instance, None)
    if not instances_of(seen, definition.provider):
        service.connector_for(definition)  # says it is not configured
    plan = []
    if len(targets) > MAX_PLAN_TARGETS:
        raise InvalidInput(f"too many targets: {len(targets)} (at most {MAX_PLAN_TARGETS} per dry-run)")
    for target in dict.fromkeys(clean_target(t) for t in targets if t.strip()):
        try:
            where, found = await service.locate(definition, instance, target, principal)
        except (NotFound, IdentityConflict, InvalidInput) as exc:
            why = "refused: no such user" if isinstance(exc, NotFound) else f"refused: {exc.message}"
            plan.append(PlanItem(definition.id, definition.provider, target, None, None, why))
            continue
        connector = seen[where]
        try:
            account = found or await connector.resolve_user(target)
        except (AccountNotFound, TransientError) as exc:
            why = f"refused: {exc.message}"
            plan.append(PlanItem(definition.id, definition.provider, target, None, None, why))
            continue
        try:
            state: AccountState | None = await connector.read_state(account)
        except TransientError:
            state = None
        refusal = None
        try:
            gated = await service.gate(
                principal, definition, connector, target, account, request_approval=False, state=state
            )
            refusal = f"needs approval: {gated.reason}" if gated.reason else None
        except ProtectedAccount as exc:
            refusal = exc.message
        plan.append(plan_item(definition, target, account, state, refusal))
    return plan
