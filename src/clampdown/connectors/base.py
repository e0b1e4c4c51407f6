"""The protocol every provider connector implements.

A connector turns a user reference into an `Account`, reads its state and performs actions. Each
action in the catalog names a connector method with the signature of `ActionMethod`. Methods are
idempotent: an account already in the requested state yields `ActionOutcome.already(...)`.
Failures are raised as `TransientError` (worth retrying, with the provider's retry hint) or
`PermanentError` (fails at once); `AccountNotFound` and `ActionAccountError` are permanent.
Connectors never touch the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from clampdown.model import Account, AccountState, ActionContext, ActionOutcome, ResidualAccess

ActionMethod = Callable[[Account, ActionContext], Awaitable[ActionOutcome]]


@runtime_checkable
class Connector(Protocol):
    """One configured provider (one AD forest, one Entra tenant, one Okta org)."""

    provider: ClassVar[str]
    # The pydantic model of this connector's `[providers.NAME]` config section.
    settings_model: ClassVar[type[BaseModel]]

    @classmethod
    def from_settings(cls, settings: Any) -> Connector:
        """Build a connector from its validated settings (an instance of `settings_model`)."""
        ...

    async def resolve_user(self, reference: str) -> Account:
        """The account a reference (id, login, UPN, ...) names; AccountNotFound if none."""
        ...

    async def read_state(self, account: Account) -> AccountState:
        """The account's current state, read from the provider."""
        ...

    async def check(self) -> None:
        """Raise unless the provider is reachable with the configured action account."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def action_method(connector: Connector, method: str) -> ActionMethod:
    """The connector's bound method for a catalog entry; PermanentError if it has none.

    `build_connectors` refuses to start without every method, so in a configured install this
    never fires; it stays as the last line of defence (a connector built by hand, a worker of
    another version), failing the one action while the worker carries on.
    """
    from clampdown.errors import PermanentError

    bound = getattr(connector, method, None)
    if bound is None or not callable(bound):
        raise PermanentError(
            f"the {connector.provider} connector does not implement '{method}'",
            code="not_supported",
        )
    return bound  # type: ignore[no-any-return]


# A per-item result of a batch call: the value, or the provider error for that item alone.
ItemResult = Any


@runtime_checkable
class BatchingConnector(Protocol):
    """Optional: a connector that does many items per provider request (Graph `$batch`, risk lists).

    The engine groups claimed actions of one type and calls these with up to `max_batch` items;
    each returned list has one entry per item, in order: the value, or a ProviderError
    (TransientError / PermanentError) for that item alone. A connector without these methods is
    called once per item.
    """

    max_batch: int

    async def read_states(self, accounts: list[Account]) -> list[AccountState | Exception]:
        """The state of each account."""
        ...

    async def perform_batch(
        self, method: str, items: list[tuple[Account, ActionContext]]
    ) -> list[ActionOutcome | Exception]:
        """Perform catalog method `method` on each (account, context)."""
        ...


@runtime_checkable
class BatchResolver(Protocol):
    """Optional: a connector that finds many users in one provider request (one LDAP search).

    The engine calls it with the references of a group of claimed actions instead of
    `resolve_user` for each; one entry per reference, in order: the Account, or the error
    `resolve_user` would raise for that reference alone.
    """

    async def resolve_users(self, references: list[str]) -> list[Account | Exception]:
        """The account each reference names."""
        ...


@runtime_checkable
class ResidualAccessReader(Protocol):
    """Optional: a connector that can say what an account may still use after a containment.

    `applied` names each catalog action of this provider in force on the account (completed and
    not undone) with the moment it completed: `{"entra.suspend_user": t1, "entra.revoke_sessions":
    t2}`. The answer lists each kind of access the provider knows of, ended or not, with the
    safe upper bound of when it ends by itself (a token issued just before the cut lives its
    whole lifetime). Lifetimes are read from the provider (a token lifetime policy, the domain's
    Kerberos policy) where it publishes them, else its documented defaults, and say which.
    Raises like any read: TransientError, PermanentError.
    """

    async def residual_access(
        self, account: Account, applied: Mapping[str, datetime]
    ) -> list[ResidualAccess]:
        """What `account` may still use, given the actions `applied` to it."""
        ...


@dataclass(frozen=True)
class FoundUser:
    """One account a people search found, with what a person reads to pick it."""

    account: Account
    display_name: str
    email: str | None = None


@runtime_checkable
class UserSearcher(Protocol):
    """Optional: a connector that finds users from a fragment of a name, login or email.

    `text` is already checked (limits.clean_search_text); the connector escapes it for its query
    language and matches it as a prefix of each name part and, where the directory can, anywhere
    in the name, login and email. At most `limit` users, in the directory's order. Raises like any
    read: TransientError, PermanentError.
    """

    async def search_users(self, text: str, limit: int) -> list[FoundUser]:
        """The users whose name, login or email starts with (or holds) `text`."""
        ...
