"""An in-process directory for engine tests and the queue benchmark, never for real accounts.

Every reference names an existing user except those starting with `missing` (or, with `users`,
every name but those). Its account carries
the anchors a real connector of the provider it stands in for would (ad: userPrincipalName,
objectSid, sAMAccountName; entra: userPrincipalName, onPremisesSecurityIdentifier,
onPremisesSamAccountName; okta: login, email), derived from the user name alone, so one name links
into one person across memory providers. With `state_path`
the state lives in a SQLite file, so several worker processes share it, and every call and every
change that really happened is logged there: the crash and concurrency tests count those rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import threading
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from clampdown.connectors.base import FoundUser
from clampdown.errors import AccountNotFound, TransientError
from clampdown.model import Account, AccountState, ActionContext, ActionOutcome, StateValue


class MemorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = "memory"  # the provider name this directory stands in for
    state_path: str | None = None
    delay_seconds: float = 0.0
    transient_failures: int = 0  # per account and action: fail this many times before working
    users: list[str] | None = None  # only these user names exist (default: every name)


# method -> (state field, value it sets)
_EFFECTS: dict[str, tuple[str, StateValue]] = {
    "disable_user": ("enabled", False),
    "suspend_user": ("enabled", False),
    "deactivate_user": ("enabled", False),
    "enable_user": ("enabled", True),
    "unsuspend_user": ("enabled", True),
    "force_password_reset": ("must_change_password", True),
    "clear_password_reset": ("must_change_password", False),
    "mark_compromised": ("riskLevel", "high"),
    "dismiss_user_risk": ("riskLevel", "none"),
    # Okta eviction (okta.expire_password, okta.set_risk and its inverse)
    "expire_password": ("must_change_password", True),
    "set_risk": ("riskLevel", "HIGH"),
    "clear_risk": ("riskLevel", "none"),
    "remove_privileged_groups": ("privileged_groups_removed", True),
    "restore_privileged_groups": ("privileged_groups_removed", False),
}
# Methods that always act (nothing in the state says they were done): revoke, clear, reset.
_ALWAYS_ACT = frozenset(
    {"revoke_sessions", "clear_sessions", "revoke_grants", "reset_factors", "universal_logout",
     "remove_auth_methods", "disable_devices", "enable_devices"}
)  # fmt: skip
# Named as the real connectors name them, so the catalog's effects hold here too.
_DEFAULTS: dict[str, StateValue] = {
    "enabled": True,
    "must_change_password": False,
    "riskLevel": "none",
    "privileged_groups_removed": False,
}
_DOMAIN = "memory.test"
_DOMAIN_SID = "S-1-5-21-1004336348-1177238915-682003330"


def anchors_for(provider: str, reference: str) -> dict[str, str]:
    """The identifiers the account of `reference` carries in a memory directory standing in for
    `provider`: the same user name gives the same UPN and SID in every provider."""
    user = reference.split("@")[0]
    upn = reference if "@" in reference else f"{reference}@{_DOMAIN}"
    rid = 1000 + int.from_bytes(hashlib.sha256(user.casefold().encode()).digest()[:4], "big") % 10**8
    sid = f"{_DOMAIN_SID}-{rid}"
    if provider == "ad":
        return {"userPrincipalName": upn, "objectSid": sid, "sAMAccountName": user}
    if provider == "entra":
        return {
            "userPrincipalName": upn,
            "onPremisesSecurityIdentifier": sid,
            "onPremisesSamAccountName": user,
        }
    if provider == "okta":
        return {"login": upn, "email": upn}
    return {}


_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (account TEXT, field TEXT, value TEXT, PRIMARY KEY (account, field));
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT, method TEXT, action_id INTEGER, pid INTEGER
);
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT, method TEXT, action_id INTEGER, pid INTEGER
);
"""


class MemoryConnector:
    """A directory held in memory or in one SQLite file."""

    provider: ClassVar[str] = "memory"
    settings_model: ClassVar[type[BaseModel]] = MemorySettings

    def __init__(self, settings: MemorySettings) -> None:
        self.settings = settings
        self.provider = settings.provider  # type: ignore[misc]
        self.calls = 0
        self._state: dict[tuple[str, str], StateValue] = {}
        self._failures: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        if settings.state_path:
            self._db = sqlite3.connect(settings.state_path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)

    @classmethod
    def from_settings(cls, settings: Any) -> MemoryConnector:
        return cls(settings)

    async def resolve_user(self, reference: str) -> Account:
        known = self.settings.users
        if reference.startswith("missing") or (known is not None and reference.split("@")[0] not in known):
            raise AccountNotFound(f"no user '{reference}'")
        attributes = anchors_for(self.provider, reference)
        return Account(provider=self.provider, id=f"id-{reference}", name=reference, attributes=attributes)

    async def search_users(self, text: str, limit: int) -> list[FoundUser]:
        """The listed users (`users`) whose name holds `text`; none when every name exists."""
        wanted = text.casefold()
        names = [n for n in self.settings.users or [] if wanted in n.casefold()][:limit]
        return [FoundUser(await self.resolve_user(n), n.title()) for n in names]

    def _get(self, account: str, field: str) -> StateValue:
        if self._db is None:
            return self._state.get((account, field), _DEFAULTS[field])
        row = self._db.execute(
            "SELECT value FROM state WHERE account = ? AND field = ?", (account, field)
        ).fetchone()
        if row is None:
            return _DEFAULTS[field]
        text = str(row[0])
        return {"True": True, "False": False}.get(text, text)

    async def read_state(self, account: Account) -> AccountState:
        values = {f: self._get(account.id, f) for f in _DEFAULTS}
        enabled = bool(values["enabled"])
        if self.provider == "okta":  # Okta's own statuses (a memory Okta only suspends)
            status = "ACTIVE" if enabled else "SUSPENDED"
        else:
            status = "enabled" if enabled else "disabled"
        return AccountState(enabled=enabled, status=status, values=values)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        if self._db is not None:
            self._db.close()

    def _apply(self, account: str, method: str, action_id: int) -> bool:
        field, value = _EFFECTS[method]
        if self._db is None:
            with self._lock:
                if self._state.get((account, field), _DEFAULTS[field]) == value:
                    return False
                self._state[(account, field)] = value
                return True
        # Compare-and-set in one transaction: two processes racing change the account once.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._get(account, field) == value:
                self._db.execute("COMMIT")
                return False
            self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?)", (account, field, str(value)))
            self._db.execute(
                "INSERT INTO changes (account, method, action_id, pid) VALUES (?, ?, ?, ?)",
                (account, method, action_id, os.getpid()),
            )
            self._db.execute("COMMIT")
            return True
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    async def _perform(self, method: str, account: Account, context: ActionContext) -> ActionOutcome:
        self.calls += 1
        if self._db is not None:
            self._db.execute(
                "INSERT INTO calls (account, method, action_id, pid) VALUES (?, ?, ?, ?)",
                (account.id, method, context.action_id, os.getpid()),
            )
        if self.settings.delay_seconds:
            await asyncio.sleep(self.settings.delay_seconds)
        key = (account.id, method)
        if self._failures.get(key, 0) < self.settings.transient_failures:
            self._failures[key] = self._failures.get(key, 0) + 1
            raise TransientError("the directory is busy", retry_after=0.0)
        if method in _ALWAYS_ACT:
            return ActionOutcome(
                changed=True, message="sessions revoked" if method == "revoke_sessions" else f"{method} done"
            )
        if self._apply(account.id, method, context.action_id):
            return ActionOutcome(changed=True, message=f"{method} done")
        return ActionOutcome.already(method)

    async def disable_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("disable_user", account, context)

    async def enable_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("enable_user", account, context)

    async def suspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("suspend_user", account, context)

    async def unsuspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("unsuspend_user", account, context)

    async def deactivate_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("deactivate_user", account, context)

    async def force_password_reset(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("force_password_reset", account, context)

    async def clear_password_reset(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("clear_password_reset", account, context)

    async def mark_compromised(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("mark_compromised", account, context)

    async def dismiss_user_risk(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("dismiss_user_risk", account, context)

    async def revoke_sessions(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("revoke_sessions", account, context)

    # --- Okta eviction --------------------------------------------------------------------
    async def clear_sessions(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("clear_sessions", account, context)

    async def revoke_grants(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("revoke_grants", account, context)

    async def reset_factors(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("reset_factors", account, context)

    async def expire_password(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("expire_password", account, context)

    async def set_risk(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("set_risk", account, context)

    async def clear_risk(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("clear_risk", account, context)

    async def universal_logout(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("universal_logout", account, context)

    async def remove_privileged_groups(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("remove_privileged_groups", account, context)

    async def restore_privileged_groups(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("restore_privileged_groups", account, context)

    async def remove_auth_methods(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("remove_auth_methods", account, context)

    async def disable_devices(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("disable_devices", account, context)

    async def enable_devices(self, account: Account, context: ActionContext) -> ActionOutcome:
        return await self._perform("enable_devices", account, context)
