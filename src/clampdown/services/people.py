"""One person across providers: their account in AD, Entra ID and Okta, with state and the
actions the caller may take on each."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from clampdown.auth.principal import Principal
from clampdown.catalog import ActionDefinition, all_actions
from clampdown.connectors.base import Connector
from clampdown.errors import AccountNotFound, ClampdownError, InvalidInput, NotFound
from clampdown.limits import MAX_TARGET
from clampdown.model import Account, AccountState

# Attributes connectors put on accounts that name the same person in another provider.
_LINKING_ATTRIBUTES = ("upn", "userPrincipalName", "login", "email", "mail")


@dataclass(frozen=True)
class LinkedAccount:
    account: Account
    state: AccountState | None
    state_error: str | None
    actions: list[ActionDefinition]  # what the caller may run on it


@dataclass(frozen=True)
class Person:
    reference: str
    accounts: list[LinkedAccount] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # provider -> why it was not asked


async def _try_resolve(connector: Connector, reference: str) -> Account | ClampdownError | None:
    try:
        return await connector.resolve_user(reference)
    except AccountNotFound:
        return None
    except ClampdownError as exc:
        return exc


async def find_person(connectors: dict[str, Connector], reference: str, caller: Principal) -> Person:
    """Resolve `reference` in every provider, then follow the UPN / login it yields into the others."""
    ref = reference.strip()
    if not ref or len(ref) > MAX_TARGET or "\x00" in ref:
        raise InvalidInput(f"user reference must be 1 to {MAX_TARGET} characters, without NUL")
    names = list(connectors)
    first = await asyncio.gather(*(_try_resolve(connectors[n], ref) for n in names))
    found: dict[str, Account] = {}
    unreachable: dict[str, str] = {}
    for name, result in zip(names, first, strict=True):
        if isinstance(result, Account):
            found[name] = result
        elif isinstance(result, ClampdownError):
            unreachable[name] = result.message
    links = {v for a in found.values() for k, v in a.attributes.items() if k in _LINKING_ATTRIBUTES}
    for name in [n for n in names if n not in found and n not in unreachable]:
        for link in sorted(links):
            result = await _try_resolve(connectors[name], link)
            if isinstance(result, Account):
                found[name] = result
                break
    if not found:
        if unreachable:
            raise NotFound(f"no user '{ref}' in the providers that answered; unreachable: {unreachable}")
        raise NotFound(f"no user '{ref}' in {', '.join(names) or 'any provider (none configured)'}")
    accounts = []
    for name, account in found.items():
        try:
            state, error = await connectors[name].read_state(account), None
        except ClampdownError as exc:
            state, error = None, exc.message
        allowed = [d for d in all_actions() if d.provider == account.provider and caller.may_run(d)]
        accounts.append(LinkedAccount(account, state, error, allowed))
    return Person(ref, accounts, unreachable)
