"""Residual access: for each account an open containment holds, what may still work and until
when (tokens issued before the cut, Kerberos tickets issued before the disable, app sessions,
methods and grants left), read from each provider's connector now."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from clampdown.clock import Clock
from clampdown.connectors.base import Connector, ResidualAccessReader
from clampdown.connectors.instances import find_instance
from clampdown.errors import ClampdownError
from clampdown.model import Account, ActionStatus, Containment, ResidualAccess, ResidualStatus, StepRole

# How long one provider may take to answer before its accounts are reported unknown.
READ_TIMEOUT_SECONDS = 20.0


def undone_steps(containments: list[Containment]) -> set[int]:
    """Steps already undone, or being undone, by hand or by a timer that started. An undo or timer
    still waiting (queued or for approval) does not count: the release cancels it and covers its step."""
    going = (ActionStatus.RUNNING, ActionStatus.COMPLETED)
    return {
        a.undoes_action_id
        for c in containments
        for a in c.actions
        if a.undoes_action_id is not None and a.status in going
    }


def applied_steps(chain: list[Containment]) -> dict[str, dict[str, datetime]]:
    """For each account id: each action type in force on it (a completed step not undone, nor
    being undone) and the moment it first completed, across the chain of containments."""
    undone = undone_steps(chain)
    applied: dict[str, dict[str, datetime]] = {}
    for containment in chain:
        for step in containment.actions:
            if (
                step.containment_role != StepRole.STEP
                or step.status is not ActionStatus.COMPLETED
                or step.account is None
                or step.id in undone
            ):
                continue
            when = step.finished_at or step.requested_at
            seen = applied.setdefault(step.account.id, {})
            if step.type not in seen or when < seen[step.type]:
                seen[step.type] = when
    return applied


class ResidualAccessService:
    """Asks each account's connector what the account may still use."""

    def __init__(self, connectors: Mapping[str, Connector], clock: Clock) -> None:
        self.connectors = connectors
        self.clock = clock

    async def of(self, containment: Containment, chain: list[Containment]) -> tuple[ResidualAccess, ...]:
        """What the containment's accounts may still use, as of now; an account whose provider
        cannot say (not configured, no reader, unreachable) is listed as unknown with the reason."""
        applied = applied_steps(chain)
        now = self.clock.now()
        answers = await asyncio.gather(
            *(self._one(account, applied.get(account.id, {})) for account in containment.accounts)
        )
        return tuple(item.at(now) for found in answers for item in found)

    async def _one(self, account: Account, applied: Mapping[str, datetime]) -> list[ResidualAccess]:
        where = find_instance(self.connectors, account.provider, account.instance)
        connector = self.connectors.get(where) if where else None
        if not isinstance(connector, ResidualAccessReader):
            why = "not configured" if connector is None else "cannot report residual access"
            return [_unknown(account, f"the {account.where} connector {why}")]
        try:
            found = await asyncio.wait_for(
                connector.residual_access(account, applied), timeout=READ_TIMEOUT_SECONDS
            )
        except TimeoutError:
            return [_unknown(account, f"{account.where} did not answer within {READ_TIMEOUT_SECONDS:g} s")]
        except ClampdownError as exc:
            return [_unknown(account, f"{account.where} could not be read: {exc}")]
        return [replace(item, provider=account.provider, account=account.name) for item in found]


def _unknown(account: Account, why: str) -> ResidualAccess:
    return ResidualAccess(
        account.provider,
        account.name,
        "unread",
        ResidualStatus.UNKNOWN,
        f"What this account may still use is unknown ({why}): assume its sessions and tokens still work",
    )
