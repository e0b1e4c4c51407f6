"""Domain types shared by every layer: accounts, their state, actions and their statuses."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

# Values a provider may report in an account's state; JSON-safe so a snapshot can be stored as is.
StateValue = str | int | float | bool | None | list[str]


class ActionStatus(enum.StrEnum):
    """Where an action is in its life; the three last ones are final."""

    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (ActionStatus.COMPLETED, ActionStatus.FAILED, ActionStatus.CANCELLED)


class ActionSource(enum.StrEnum):
    """Where an action came from: the face or the part of Clampdown that asked for it."""

    MANUAL = "manual"  # the CLI's `act`, or an API client that says nothing else
    USER_PAGE = "user_page"  # the console's user page
    SIDE_PANEL = "side_panel"  # the console's side panel (a person opened from a list)
    HUNTING = "hunting"  # acting on the results of a hunt
    PLAYBOOK = "playbook"  # a step (or release) of a containment
    RULE = "rule"  # a detection rule that acts on what it finds
    TIMED_RELEASE = "timed_release"  # the undo scheduled by `until`
    WATCH = "watch"  # the containment watch applying a step again after drift

    @property
    def stated_by_clients(self) -> bool:
        """Whether a client of the API may state it (the others are set by Clampdown itself)."""
        return self in CLIENT_SOURCES


CLIENT_SOURCES = frozenset(
    {ActionSource.MANUAL, ActionSource.USER_PAGE, ActionSource.SIDE_PANEL, ActionSource.HUNTING}
)


# An account attribute with several values (sIDHistory) holds them joined by this.
MULTI_VALUE_SEPARATOR = " "


@dataclass(frozen=True)
class Account:
    """One account of a person in one provider, as the provider identifies it."""

    provider: str  # the kind of directory: ad, entra, okta
    id: str  # the provider's immutable id: objectGUID, Entra object id, Okta user id
    name: str  # what a person reads: UPN, login or DN
    attributes: dict[str, str] = field(default_factory=dict)  # stable identifiers (dn, sid, upn, ...)
    # How this account was linked into its person, in words; provenance, not identity (no compare).
    linked_by: str | None = field(default=None, compare=False)
    # The configured directory it lives in ([providers.NAME]); None: the one named after its kind.
    # Not compared: ids are unique across directories (GUIDs, Okta and Entra object ids).
    instance: str | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        """The name of the configured directory the account lives in."""
        return self.instance or self.provider

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "instance": self.where}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Account:
        return cls(
            provider=str(data["provider"]),
            id=str(data["id"]),
            name=str(data["name"]),
            attributes={str(k): str(v) for k, v in (data.get("attributes") or {}).items()},
            linked_by=str(data["linked_by"]) if data.get("linked_by") else None,
            instance=str(data["instance"]) if data.get("instance") else None,
        )


@dataclass(frozen=True)
class AccountState:
    """An account's state as read from its provider just now; `values` holds provider details."""

    enabled: bool | None = None
    status: str | None = None  # the provider's own word: ACTIVE, SUSPENDED, disabled ...
    values: dict[str, StateValue] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "status": self.status, "values": dict(self.values)}

    def value_at(self, key: str) -> object:
        """The value a catalog effect names: "enabled", "status" or "values.<name>"."""
        if key == "enabled":
            return self.enabled
        if key == "status":
            return self.status
        return self.values.get(key.removeprefix("values."))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountState:
        return cls(
            enabled=data.get("enabled"),
            status=data.get("status"),
            values=dict(data.get("values") or {}),
        )


@dataclass(frozen=True)
class ActionContext:
    """What a connector method may need besides the account."""

    action_id: int
    reason: str
    requested_by: str
    state_before: AccountState | None = None
    # For an undo: the state read before the action being undone, so it can be restored exactly.
    restore_state: AccountState | None = None
    # The public half of the requester's one-time key: a secret the action makes (a new random
    # password) is sealed to it, never stored or returned in the clear (clampdown.sealing).
    seal_to: str | None = None


# The detail holding a secret sealed for the requester: opened once through the service.
SEALED_DETAIL = "sealed_for_requester"


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in ("password", "secret", "token"))


@dataclass(frozen=True)
class ActionOutcome:
    """What a connector reports after performing an action successfully."""

    changed: bool  # False: the account was already in the requested state
    message: str
    provider_request_id: str | None = None
    warnings: tuple[str, ...] = ()
    details: dict[str, StateValue] = field(default_factory=dict)
    # What an undo needs beyond the state read before (which devices this action disabled): the
    # inverse finds it in its restore_state's values (restore_point below).
    undo_with: dict[str, StateValue] = field(default_factory=dict)

    @classmethod
    def already(cls, message: str) -> ActionOutcome:
        """The idempotent no-op: nothing to change, which is success."""
        return cls(changed=False, message=f"Already in the requested state: {message}")

    def to_json(self) -> dict[str, Any]:
        """The outcome as stored in the action center: secrets a connector returned are withheld."""
        details = {k: ("[withheld]" if _is_secret(k) else v) for k, v in self.details.items()}
        out: dict[str, Any] = {
            "changed": self.changed,
            "message": self.message,
            "provider_request_id": self.provider_request_id,
            "warnings": list(self.warnings),
            "details": details,
        }
        if self.undo_with:
            out["undo_with"] = {k: v for k, v in self.undo_with.items() if not _is_secret(k)}
        return out


@dataclass(frozen=True)
class AttemptRecord:
    """One failed or interrupted attempt, kept on the action for the action center."""

    attempt: int
    worker: str
    at: datetime
    error_code: str
    message: str
    retry_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "worker": self.worker,
            "at": self.at.isoformat(),
            "error_code": self.error_code,
            "message": self.message,
            "retry_at": self.retry_at.isoformat() if self.retry_at else None,
        }


@dataclass(frozen=True)
class Action:
    """One requested remediation action; the row in the store is the job itself."""

    id: int
    type: str
    provider: str
    target: str
    status: ActionStatus
    requested_by: str
    reason: str
    requested_at: datetime
    attempts: int = 0
    account: Account | None = None
    idempotency_key: str | None = None
    batch_id: str | None = None
    undoes_action_id: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    available_at: datetime | None = None
    lease_owner: str | None = None
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    state_before: AccountState | None = None
    provider_request_id: str | None = None
    history: tuple[AttemptRecord, ...] = ()
    after_action_id: int | None = None  # runs only once that action completed (playbook order)
    playbook: str | None = None
    approval_reason: str | None = None  # why it waits for a second person
    approved_by: str | None = None
    # The rules an approval of this action covers: a protection rule is lifted only if it is here.
    approval_rules: tuple[str, ...] = ()
    containment_id: int | None = None
    containment_role: str | None = None  # step, timer (timed release), release, undo
    seal_key: str | None = None  # public: what a secret this action makes is sealed to
    # Asked to cancel while an attempt ran: that attempt finishes, and the action is not retried.
    cancel_requested_by: str | None = None
    instance: str | None = None  # the configured directory it runs against ([providers.NAME])
    source: ActionSource = ActionSource.MANUAL  # where the request came from
    incident: str | None = None  # the incident (ticket id) it is part of
    # Only on the answer to the request that queued it, for the requester: the private half.
    secret_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def sealed_secret(self) -> str | None:
        """The secret sealed for the requester, until it is opened."""
        details = (self.result or {}).get("details") or {}
        sealed = details.get(SEALED_DETAIL)
        return str(sealed) if sealed else None

    @property
    def changed(self) -> bool | None:
        """Whether the action changed the account; None until it completed."""
        if self.result is None:
            return None
        return bool(self.result.get("changed"))


# An undo carries what the undone action recorded changing (its result's details) in the state
# it restores, under this prefix: an inverse puts back exactly that (the groups a removal took).
UNDONE_PREFIX = "undone."


def restore_point(action: Action) -> AccountState | None:
    """What an undo of `action` restores: the state read before it ran, plus its recorded details
    as `undone.<name>` values (secrets left out) and what its connector said an undo needs (the
    result's `undo_with`, as given). None if none of these is known."""
    details = (action.result or {}).get("details") or {}
    recorded = {
        UNDONE_PREFIX + str(k): v for k, v in details.items() if k != SEALED_DETAIL and not _is_secret(str(k))
    }
    undo_with = (action.result or {}).get("undo_with") or {}
    if action.state_before is None and not recorded and not undo_with:
        return None
    before = action.state_before or AccountState()
    return replace(before, values={**before.values, **recorded, **undo_with})


@dataclass(frozen=True)
class ActionFilter:
    """Which actions to list or export; None or empty means any. Checked by the services
    (`ActionService.list_actions`) before it reaches the store."""

    statuses: tuple[ActionStatus, ...] = ()
    type: str | None = None
    provider: str | None = None
    instance: str | None = None  # the configured directory ([providers.NAME]) it ran in
    target: str | None = None  # matches the target as given, or the resolved account id
    requested_by: str | None = None
    batch_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: ActionSource | None = None
    incident: str | None = None
    error_code: str | None = None  # why it failed (or was cancelled), as in Action.error_code
    # The directories the reader may see (their scope); None: every one. Set by the services.
    instances: frozenset[str] | None = None


class ResidualStatus(enum.StrEnum):
    """Whether a kind of access still works."""

    ENDED = "ended"  # it no longer works (cut by a step, or its lifetime passed)
    UNTIL = "until"  # it works until `until`, then ends by itself
    REMAINS = "remains"  # it works until someone acts (nothing ends it by itself)
    UNKNOWN = "unknown"  # the provider could not be read: assume it works


@dataclass(frozen=True)
class ResidualAccess:
    """One kind of access an account may still hold after its containment acted, and until when:
    tokens issued before a revoke, Kerberos tickets issued before a disable, app sessions a
    provider cannot end, methods and grants left registered."""

    provider: str
    account: str  # the account's name (UPN, login, DN)
    kind: str  # access_tokens, refresh_tokens, sessions, app_sessions, kerberos_tickets, ...
    status: ResidualStatus
    detail: str  # for a person: what it is, why it still works, what would end it
    until: datetime | None = None  # with status `until`: when it ends by itself (the safe upper bound)
    items: tuple[str, ...] = ()  # what is left, by name (methods, grants, groups, devices)

    def at(self, now: datetime) -> ResidualAccess:
        """As of `now`: access whose `until` has passed has ended."""
        if self.status is ResidualStatus.UNTIL and self.until is not None and self.until <= now:
            return replace(self, status=ResidualStatus.ENDED)
        return self


class ContainmentState(enum.StrEnum):
    """Where a containment is in its life. Stored: all but partly_contained, which is read from
    the steps (an active containment some of whose steps failed or were undone)."""

    AWAITING_APPROVAL = "awaiting_approval"
    ACTIVE = "active"
    PARTLY_CONTAINED = "partly_contained"
    RELEASED = "released"  # a person released it
    EXPIRED = "expired"  # its `until` passed and the timed release ran
    SUPERSEDED = "superseded"  # a newer containment of the same person took over
    CANCELLED = "cancelled"  # its approval was rejected or expired: nothing was changed

    @property
    def is_open(self) -> bool:
        """Still holding the person (or about to): a release or a newer containment ends it."""
        return self in (
            ContainmentState.AWAITING_APPROVAL,
            ContainmentState.ACTIVE,
            ContainmentState.PARTLY_CONTAINED,
        )


class StepRole(enum.StrEnum):
    """What an action is to its containment."""

    STEP = "step"  # a step of the playbook
    TIMER = "timer"  # the timed release of a step, due at the containment's `until`
    RELEASE = "release"  # undoing a step when a person releases the containment
    UNDO = "undo"  # undoing one step by hand


@dataclass(frozen=True)
class Containment:
    """One containment of one person: who asked, why, which accounts, its state and its steps.
    Release, timed release and undo all hang off it."""

    id: int
    person: str
    playbook: str
    requested_by: str
    reason: str
    state: ContainmentState
    created_at: datetime
    accounts: tuple[Account, ...] = ()
    until: datetime | None = None
    batch_id: str | None = None
    supersedes_id: int | None = None  # the open containment this one took over
    superseded_by_id: int | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None  # who released it, or "timer"
    end_reason: str | None = None
    notes: tuple[str, ...] = ()  # steps left out or without an inverse; drift the watch saw
    incident: str | None = None  # the incident (ticket id); its actions carry it too
    actions: tuple[Action, ...] = ()  # its steps, timers, releases and undos, in id order
    # What its accounts may still use, read from the providers when asked; None: not read.
    residual: tuple[ResidualAccess, ...] | None = None

    @property
    def steps(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.containment_role == StepRole.STEP)

    @property
    def effective_state(self) -> ContainmentState:
        """The stored state, with `partly_contained` for an active containment some of whose
        steps failed, were skipped or were undone by hand."""
        if self.state is not ContainmentState.ACTIVE:
            return self.state
        steps = self.steps
        undone = {
            a.undoes_action_id
            for a in self.actions
            if a.containment_role == StepRole.UNDO and a.status is ActionStatus.COMPLETED
        }
        if any(s.status in (ActionStatus.FAILED, ActionStatus.CANCELLED) or s.id in undone for s in steps):
            return ContainmentState.PARTLY_CONTAINED
        return ContainmentState.ACTIVE
