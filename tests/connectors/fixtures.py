"""Connector classes that forgot something, for configs that name them with
`connector = "tests.connectors.fixtures:..."`. Each is the memory directory (it serves the
provider its `provider` setting names) with only the action methods listed on it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.model import Account, AccountState, ActionContext, ActionOutcome


class _Directory:
    """The memory directory's lookups and lifecycle, and no action method at all."""

    provider: ClassVar[str] = "memory"
    settings_model: ClassVar[type[BaseModel]] = MemorySettings

    def __init__(self, settings: MemorySettings) -> None:
        self.memory = MemoryConnector(settings)  # opens `state_path`: building is visible on disk
        self.provider = settings.provider  # type: ignore[misc]

    @classmethod
    def from_settings(cls, settings: Any) -> _Directory:
        return cls(settings)

    async def resolve_user(self, reference: str) -> Account:
        return await self.memory.resolve_user(reference)

    async def read_state(self, account: Account) -> AccountState:
        return await self.memory.read_state(account)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        await self.memory.aclose()


class ForgetfulDirectory(_Directory):
    """Serves ad or okta, but forgot ad.clear_password_reset and okta.deactivate_user."""

    async def disable_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.disable_user(account, context)

    async def enable_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.enable_user(account, context)

    async def force_password_reset(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.force_password_reset(account, context)

    async def suspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.suspend_user(account, context)

    async def remove_privileged_groups(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.remove_privileged_groups(account, context)

    async def restore_privileged_groups(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.restore_privileged_groups(account, context)

    async def unsuspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.unsuspend_user(account, context)

    # okta eviction: all there
    async def clear_sessions(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.clear_sessions(account, context)

    async def revoke_grants(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.revoke_grants(account, context)

    async def reset_factors(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.reset_factors(account, context)

    async def expire_password(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.expire_password(account, context)

    async def set_risk(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.set_risk(account, context)

    async def clear_risk(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.clear_risk(account, context)

    async def universal_logout(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self.memory.universal_logout(account, context)


class BlockingDirectory(ForgetfulDirectory):
    """Serves okta, with deactivate_user written as a plain (blocking) def."""

    def deactivate_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return ActionOutcome(changed=True, message="deactivated, blocking the event loop")
