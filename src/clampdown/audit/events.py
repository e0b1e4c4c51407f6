"""The one place audit events are named and built. Every event in the chain, the webhooks and
syslog is one of `EventName`; the functions below are the only constructors the product uses."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from clampdown.audit.chain import AuditEvent
from clampdown.audit.checkpoint import Checkpoint
from clampdown.model import Action, ActionStatus, Containment


class EventName(enum.StrEnum):
    """Every kind of event Clampdown records, as webhook subscriptions and SIEMs see it."""

    ACTION_REQUESTED = "action.requested"
    ACTION_COMPLETED = "action.completed"
    ACTION_FAILED = "action.failed"
    ACTION_CANCELLED = "action.cancelled"
    ACTION_CANCEL_REQUESTED = "action.cancel_requested"  # while an attempt runs: no retry after it
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_REJECTED = "approval.rejected"
    APPROVAL_EXPIRED = "approval.expired"
    ACCESS_DENIED = "access.denied"
    SIGNIN_SUCCEEDED = "signin.succeeded"
    SIGNIN_FAILED = "signin.failed"
    CONTAINMENT_CREATED = "containment.created"
    CONTAINMENT_RELEASED = "containment.released"
    RULE_CREATED = "rule.created"
    RULE_ENABLED = "rule.enabled"
    RULE_DISABLED = "rule.disabled"
    RULE_RUN = "rule.run"
    # auth and access
    SIGNIN_THROTTLED = "signin.throttled"  # failed sign-ins: the account or address must wait
    SIGNIN_LOCKED = "signin.locked"  # as many failures as the lockout allows: locked for a while
    SESSION_ENDED = "session.ended"  # the identity provider no longer signs the person in
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    USER_CREATED = "user.created"
    USER_ROLES_CHANGED = "user.roles_changed"  # by an administrator, or synced from SSO groups
    USER_SCOPE_CHANGED = "user.scope_changed"  # the directories a user's roles are limited to
    ROLE_CREATED = "role.created"
    ROLE_CHANGED = "role.changed"
    ROLE_DELETED = "role.deleted"
    # audit anchoring and settings
    AUDIT_CHECKPOINT = "audit.checkpoint"
    # hunting
    SAVED_QUERY_CREATED = "query.saved"
    SAVED_QUERY_DELETED = "query.deleted"
    # containment watch
    CONTAINMENT_DRIFTED = "containment.drifted"  # an account changed outside Clampdown while held
    # shared signals (SSF 1.0, CAEP, RISC)
    SIGNAL_RECEIVED = "signal.received"  # a Security Event Token from a transmitter was accepted
    SIGNAL_REFUSED = "signal.refused"  # one was refused, with its RFC 8935 error code
    SIGNAL_DEFERRED = "signal.deferred"  # one could not be checked now (keys unreachable): 503, resent
    # Clampdown as a transmitter: its streams, as receivers manage them (SSF 1.0 section 8)
    SSF_STREAM_CREATED = "ssf.stream_created"
    SSF_STREAM_UPDATED = "ssf.stream_updated"  # its delivery, events or description
    SSF_STREAM_DELETED = "ssf.stream_deleted"
    SSF_STREAM_STATUS_CHANGED = "ssf.stream_status_changed"  # enabled, paused or disabled
    SSF_STREAM_SUBJECTS_CHANGED = "ssf.stream_subjects_changed"  # a subject added or removed
    SSF_STREAM_VERIFIED = "ssf.stream_verification_requested"  # a verification SET queued


# Events whose transaction changed what a worker may claim: an action queued (or released from
# approval), or one ended (a playbook step after it may run now). store.wakeup rings on them.
QUEUE_EVENTS = frozenset(
    {
        EventName.ACTION_REQUESTED,
        EventName.APPROVAL_APPROVED,
        EventName.ACTION_COMPLETED,
        EventName.ACTION_FAILED,
        EventName.ACTION_CANCELLED,
    }
)


def action_event(
    name: EventName, action: Action, actor: str, at: datetime | None = None, **extra: Any
) -> AuditEvent:
    """The event for something that happened to an action (at its request time by default)."""
    data: dict[str, Any] = {
        "action_id": action.id,
        "type": action.type,
        "provider": action.provider,
        "target": action.target,
        "account": action.account.id if action.account else None,
        "reason": action.reason,
        "batch_id": action.batch_id,
        "status": action.status.value,
        "action_source": action.source.value,  # where it came from ("source" is an address)
        "incident": action.incident,
        **extra,
    }
    subject = action.account.name if action.account else action.target
    return AuditEvent(at=at or action.requested_at, actor=actor, event=name, subject=subject, data=data)


def requested_event(action: Action) -> AuditEvent:
    """A new request: waiting for approval, or queued."""
    waiting = action.status is ActionStatus.AWAITING_APPROVAL
    name = EventName.APPROVAL_REQUESTED if waiting else EventName.ACTION_REQUESTED
    return action_event(name, action, action.requested_by, approval_reason=action.approval_reason)


_OUTCOMES = {ActionStatus.COMPLETED: EventName.ACTION_COMPLETED, ActionStatus.FAILED: EventName.ACTION_FAILED}


def outcome_event(
    action: Action, status: ActionStatus, actor: str, at: datetime, message: str | None
) -> AuditEvent:
    """How an action ended: completed, failed, or cancelled (a skipped step)."""
    name = _OUTCOMES.get(status, EventName.ACTION_CANCELLED)
    return action_event(name, action, actor, at, status=status.value, message=message)


def denial_event(
    at: datetime, principal: str, attempted: str, target: str | None, missing: str, channel: str
) -> AuditEvent:
    """A caller was refused: what they attempted and what right was missing."""
    data = {"attempted": attempted, "missing": missing, "channel": channel}
    return AuditEvent(at, principal, EventName.ACCESS_DENIED, target, data)


def signin_event(
    at: datetime, username: str, succeeded: bool, method: str, source: str | None = None, **data: Any
) -> AuditEvent:
    """A sign-in attempt to the console (method password or sso), from `source` (an address).
    `username` is a known user's name, or a stand-in for an unknown one: never what was typed."""
    name = EventName.SIGNIN_SUCCEEDED if succeeded else EventName.SIGNIN_FAILED
    return AuditEvent(
        at, username, name, username, {"method": method, "channel": "console", "source": source, **data}
    )


def containment_event(name: EventName, containment: Containment, actor: str, at: datetime) -> AuditEvent:
    """A containment was created (superseding any open one) or released."""
    data: dict[str, Any] = {
        "containment_id": containment.id,
        "playbook": containment.playbook,
        "reason": containment.reason,
        "state": containment.state.value,
        "accounts": [a.id for a in containment.accounts],
        "until": containment.until.isoformat() if containment.until else None,
        "supersedes": containment.supersedes_id,
        "end_reason": containment.end_reason,
        "incident": containment.incident,
    }
    return AuditEvent(at=at, actor=actor, event=name, subject=containment.person, data=data)


def drift_event(
    containment: Containment,
    step: Action,
    key: str,
    expected: object,
    found: object,
    at: datetime,
    response: str,
) -> AuditEvent:
    """The watch found that what a containment's step made true no longer holds on its account;
    `response` says what it does about it ("alert" or "recontain")."""
    data: dict[str, Any] = {
        "containment_id": containment.id,
        "step_id": step.id,
        "type": step.type,
        "provider": step.provider,
        "account": step.account.id if step.account else None,
        "key": key,
        "expected": expected,
        "found": found,
        "response": response,
    }
    return AuditEvent(at=at, actor="watch", event=EventName.CONTAINMENT_DRIFTED, subject=containment.person,
                      data=data)  # fmt: skip


def rule_event(name: EventName, at: datetime, actor: str, rule: str, **data: Any) -> AuditEvent:
    """Someone created, enabled, disabled or ran a detection rule (one of the RULE_ names); `data`
    says whose rights it acts with and what it requests."""
    return AuditEvent(at, actor, name, rule, {"rule": rule, **data})


# auth and access


def access_event(
    name: EventName,
    at: datetime,
    actor: str,
    subject: str | None,
    channel: str,
    source: str | None = None,
    **data: Any,
) -> AuditEvent:
    """A change to who may do what (a user, a token, a role, a session, a sign-in throttle):
    `actor` did it through `channel` (api, cli, console or sso) from `source` (an address or host)."""
    return AuditEvent(at, actor, name, subject, {"channel": channel, "source": source, **data})


# audit anchoring and settings


def checkpoint_event(checkpoint: Checkpoint) -> AuditEvent:
    """A signed checkpoint of the chain's head, for webhooks and syslog (it is not itself in the chain)."""
    return AuditEvent(checkpoint.at, "clampdown", EventName.AUDIT_CHECKPOINT, None, checkpoint.to_json())


# hunting


def saved_query_event(name: EventName, at: datetime, actor: str, query_name: str, **data: Any) -> AuditEvent:
    """Someone saved or deleted a hunting query (one of the SAVED_QUERY_ names); `data` holds the
    query's id and text, the channel and, for an HTTP request, the source address."""
    return AuditEvent(at, actor, name, query_name, {"saved_query": query_name, **data})


# shared signals


def signal_event(
    name: EventName, at: datetime, receiver: str, subject: str | None, **data: Any
) -> AuditEvent:
    """A Security Event Token pushed by the transmitter of `receiver` ([ssf.receivers.NAME]) was
    accepted (SIGNAL_RECEIVED), refused (SIGNAL_REFUSED: `data` holds its RFC 8935 `err`), or could
    not be checked now and is to be sent again (SIGNAL_DEFERRED: `data` holds the error's code)."""
    return AuditEvent(at, f"ssf:{receiver}", name, subject, {"receiver": receiver, **data})


def ssf_stream_event(
    name: EventName, at: datetime, actor: str, stream_id: str, channel: str, **data: Any
) -> AuditEvent:
    """A stream of Clampdown's transmitter was created, changed or deleted (one of the SSF_STREAM_
    names) by `actor` (its owner, or "config" for a declared stream) through `channel`."""
    return AuditEvent(at, actor, name, stream_id, {"stream_id": stream_id, "channel": channel, **data})
