"""The services as `services/runtime.py` `open_runtime` builds them, over memory directories
standing in for ad, entra and okta.

A memory directory resolves every reference (except those starting with `missing`) and sets no
linking attributes, so one reference names the same person in each of them; `absent` takes a
person out of one directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog
from clampdown.audit.recorder import EventRecorder
from clampdown.config import EngineSettings, PlaybookSettings, PlaybookStep, Settings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.engine.worker import Worker
from clampdown.errors import AccountNotFound
from clampdown.model import Account
from clampdown.policy import PolicyGate
from clampdown.services.actions import ActionService
from clampdown.services.approvals import ApprovalService
from clampdown.services.playbooks import PlaybookService
from clampdown.store.actions import ActionStore
from clampdown.store.approvals import ApprovalStore
from clampdown.store.containments import ContainmentStore

FAST = EngineSettings(poll_interval_seconds=0.02, backoff_base_seconds=0.01, backoff_max_seconds=0.02)
# Only steps with an inverse, so a timed release can be scheduled for every one.
LOCKOUT = PlaybookSettings(
    steps=[
        PlaybookStep(action="ad.disable_user"),
        PlaybookStep(action="entra.suspend_user", after="ad.disable_user"),
        PlaybookStep(action="okta.suspend_user"),
    ]
)


class Directory(MemoryConnector):
    """A memory directory that lacks the people in `absent`."""

    def __init__(self, provider: str) -> None:
        super().__init__(MemorySettings(provider=provider))
        self.absent: set[str] = set()

    async def resolve_user(self, reference: str) -> Account:
        if reference.split("@")[0] in self.absent:  # by name, or by the UPN an anchor follows
            raise AccountNotFound(f"no user '{reference}'")
        return await super().resolve_user(reference)


@dataclass
class Services:
    engine: AsyncEngine
    store: ActionStore
    directories: dict[str, Directory]
    actions: ActionService
    approvals: ApprovalService
    playbooks: PlaybookService
    audit: AuditLog = field(init=False)

    def __post_init__(self) -> None:
        self.audit = AuditLog(self.engine)

    async def drain(self) -> None:
        """Run every queued action to its end."""
        gate = self.actions.guardrails
        await Worker(self.store, dict(self.directories), FAST, gate=gate).run(until_idle=True)


@pytest.fixture
def services(engine: AsyncEngine) -> Services:
    settings = Settings()
    recorder = EventRecorder(settings.webhooks)
    store = ActionStore(engine, recorder)
    directories = {name: Directory(name) for name in ("ad", "entra", "okta")}
    guardrails = PolicyGate(settings.protection, settings.approvals)
    actions = ActionService(store, dict(directories), guardrails=guardrails)
    approvals = ApprovalService(actions, ApprovalStore(engine, recorder))
    playbooks = PlaybookService(actions, {**settings.playbooks, "lockout": LOCKOUT}, ContainmentStore(store))
    return Services(engine, store, directories, actions, approvals, playbooks)
