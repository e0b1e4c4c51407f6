"""Who works the queue: the registered workers, what each holds, and whether any is alive."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import PermissionDenied, Principal, require_unscoped
from clampdown.services.actions import ActionService
from clampdown.store.workers import WorkerRecord, WorkerRegistry

NO_WORKER = "no worker is running: start `clampdown serve` (SQLite) or `clampdown worker`"


class WorkerService:
    """The workers table, for `clampdown workers`, /api/v1/workers, `act --wait` and the console."""

    def __init__(self, engine: AsyncEngine, actions: ActionService) -> None:
        self._registry = WorkerRegistry(engine)
        self._actions = actions

    async def list_workers(self, principal: Principal) -> list[WorkerRecord]:
        """Every registered worker, live ones first, with the actions each holds (response:read)."""
        await self._actions.authorize_read(principal)
        try:
            require_unscoped(principal, "see the workers")  # what they hold spans every directory
        except PermissionDenied as exc:
            await self._actions.record_denial(principal, "workers.read", None, exc.missing)
            raise
        return await self._registry.list_workers()

    async def live_workers(self) -> int:
        """How many workers heartbeat within their lease now."""
        return await self._registry.live_count()

    async def no_worker_warning(self) -> str | None:
        """What to tell someone waiting for a queued action when no live worker can take it."""
        return NO_WORKER if not await self.live_workers() else None
