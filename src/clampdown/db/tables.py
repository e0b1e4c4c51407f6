"""The SQL schema. One table of actions is at once the action center and the work queue."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (so SQLite compares strings correctly), returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use the clock's UTC time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite returns text in raw SQL paths
            value = datetime.fromisoformat(value)
        stamp: datetime = value
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


# BigInteger on PostgreSQL, but INTEGER on SQLite so it is the rowid alias that autoincrements.
ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

actions = Table(
    "actions",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("target", String(512), nullable=False),  # the reference as the requester gave it
    Column("account", JSON, nullable=True),  # the resolved Account
    Column("account_id", String(256), nullable=True),  # the provider's id, for lookups
    Column("requested_by", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    # The requester's own key: unique per requested_by; the body it was first used with beside it.
    Column("idempotency_key", String(256), nullable=True),
    Column("idempotency_request", JSON, nullable=True),
    Column("batch_id", String(64), nullable=True),
    Column("undoes_action_id", ID, ForeignKey("actions.id"), nullable=True),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    # Queued: when it may run next. Running: when its lease expires and another worker may take it.
    Column("available_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("result", JSON, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("state_before", JSON, nullable=True),
    Column("restore_state", JSON, nullable=True),  # for an undo: the state to put back
    Column("provider_request_id", String(256), nullable=True),
    Column("history", JSON, nullable=True),  # failed or interrupted attempts, oldest first
    Column("after_action_id", ID, ForeignKey("actions.id"), nullable=True),
    Column("playbook", String(64), nullable=True),
    Column("approval_reason", Text, nullable=True),
    Column("approved_by", String(256), nullable=True),
    Column("approval_rules", JSON, nullable=True),  # the rules an approval covers
    Column("containment_id", ID, ForeignKey("containments.id"), nullable=True),
    Column("containment_role", String(16), nullable=True),  # step, timer, release, undo
    Column("seal_key", String(64), nullable=True),  # public key a secret of the result is sealed to
    # Who asked to cancel it while an attempt ran: it is cancelled instead of retried.
    Column("cancel_requested_by", String(256), nullable=True),
    # The configured directory it runs against: the [providers.NAME] section (several per kind).
    Column("instance", String(64), nullable=True),
    # Where the request came from (model.ActionSource) and the incident (ticket id) it is part of.
    Column("source", String(16), nullable=False, server_default=text("'manual'")),
    Column("incident", String(64), nullable=True),
    Index(
        "ix_actions_due",
        "available_at",
        "id",
        postgresql_where=text("status IN ('queued', 'running')"),
        sqlite_where=text("status IN ('queued', 'running')"),
    ),
    # A time range; with the status beside it, the overview counts a day's or a week's actions by
    # status from the index alone (migration 0015 made it of ix_actions_requested_at).
    Index("ix_actions_requested_at_status", "requested_at", "status"),
    Index("ix_actions_batch_id", "batch_id"),
    Index("ix_actions_account_id", "account_id"),
    Index("ix_actions_after_action_id", "after_action_id"),
    Index("ix_actions_containment_id", "containment_id"),
    # The action center pages newest first (keyset on id): each filter's column, then id, holds its
    # matches in that order. A user scoped to some directories pages through theirs alone.
    Index("ix_actions_instance_id", "instance", "id"),
    Index("ix_actions_status_id", "status", "id"),
    Index("ix_actions_type_id", "type", "id"),
    Index("ix_actions_target", "target"),  # the account id has its own: the filter matches either
    # An incident's actions (most have none: those are left out), and a rare source's (rule,
    # watch), newest first (migration 0015).
    Index(
        "ix_actions_incident_id",
        "incident",
        "id",
        postgresql_where=text("incident IS NOT NULL"),
        sqlite_where=text("incident IS NOT NULL"),
    ),
    Index("ix_actions_source_id", "source", "id"),
    # SQLite, without value statistics, would sort a busy requester's actions by the unique key below.
    Index("ix_actions_requested_by_id", "requested_by", "id").ddl_if(dialect="sqlite"),
    UniqueConstraint("requested_by", "idempotency_key"),
)

# One row per containment of a person; its steps, timers, releases and undos are actions that
# point here. `state` is the lifecycle (see model.ContainmentState); `accounts` the linked Accounts.
containments = Table(
    "containments",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("person", String(512), nullable=False),
    Column("playbook", String(64), nullable=False),
    Column("requested_by", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("state", String(24), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("accounts", JSON, nullable=False),
    Column("until", UTCDateTime, nullable=True),
    Column("batch_id", String(64), nullable=True),
    Column("supersedes_id", ID, ForeignKey("containments.id"), nullable=True),
    Column("superseded_by_id", ID, ForeignKey("containments.id"), nullable=True),
    Column("ended_at", UTCDateTime, nullable=True),
    Column("ended_by", String(256), nullable=True),
    Column("end_reason", Text, nullable=True),
    Column("notes", JSON, nullable=True),
    Column("incident", String(64), nullable=True),  # the ticket id; its actions carry it too
    Index("ix_containments_state", "state"),
    Index("ix_containments_created_at", "created_at"),
)

# Which accounts each containment covers: a person is found by any one of their accounts.
containment_accounts = Table(
    "containment_accounts",
    metadata,
    Column("containment_id", ID, ForeignKey("containments.id"), primary_key=True),
    Column("account_id", String(256), primary_key=True),
    Index("ix_containment_accounts_account_id", "account_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("username", String(256), nullable=False, unique=True),
    Column("display_name", String(256), nullable=True),
    Column("password_hash", String(256), nullable=True),  # argon2; none for single sign-on users
    Column("roles", JSON, nullable=False),
    Column("scope", JSON, nullable=True),  # the directories the roles are limited to; null: every one
    Column("source", String(16), nullable=False),  # local or oidc
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime, nullable=False),
)

custom_roles = Table(
    "custom_roles",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("permissions", JSON, nullable=False),
    Column("description", Text, nullable=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256: tokens are random
    Column("prefix", String(16), nullable=False),  # shown in lists so a person can tell tokens apart
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    # Made by an administrator for a service: does not end with its single sign-on user's sessions.
    Column("service", Boolean, nullable=False, server_default=text("false")),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", ID, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    # Single sign-on: the identity provider's refresh token (encrypted under the session secret)
    # and when group membership was last checked with it.
    Column("refresh_token", Text, nullable=True),
    Column("sso_checked_at", UTCDateTime, nullable=True),
)

# Failed password sign-ins per account and per source address, for back-off and lockout; shared
# by every instance on the database. `key` is "account:<hash>" or "address:<ip>".
signin_throttle = Table(
    "signin_throttle",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", UTCDateTime, nullable=False),
    Column("blocked_until", UTCDateTime, nullable=True),
)

# Keys the server makes for itself when none is configured (the key that hashes unknown
# usernames in the audit trail).
server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
)

access_denials = Table(
    "access_denials",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("principal", String(256), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("attempted", String(128), nullable=False),  # action type or operation
    Column("target", String(512), nullable=True),
    Column("missing", String(512), nullable=False),
    Index("ix_access_denials_at", "at"),
)

# Append-only, chained by hashes: each row's hash covers its content and the previous row's hash.
# prev_hash is unique, so two writers can never both extend the same row: the chain stays a line.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", ID, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("event", String(64), nullable=False),
    Column("subject", String(512), nullable=True),
    Column("data", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False),
)

# Signed checkpoints of the audit chain's head (audit/anchor.py): the signature's key lives outside
# the database, so a truncated or rewritten chain no longer matches the latest checkpoint.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False, unique=True),  # the head's sequence number
    Column("hash", String(64), nullable=False),  # the head's hash
    Column("entries", BigInteger, nullable=False),  # rows in the chain up to and including the head
    Column("at", UTCDateTime, nullable=False),
    Column("signature", String(64), nullable=False),  # HMAC-SHA256 of the above under the key
)

# The webhook outbox: an event is committed here with its cause, then delivered with retries.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("webhook", String(128), nullable=False),
    Column("event", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

# The syslog outbox: an event's RFC 5424 frame is committed here with its cause, and a background
# sender delivers the rows in order over one persistent connection, deleting them once sent.
syslog_outbox = Table(
    "syslog_outbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("message", Text, nullable=False),  # formatted by the process where the event happened
    Column("created_at", UTCDateTime, nullable=False),
    Column("claimed_until", UTCDateTime, nullable=True),  # a sender is delivering it until then
)

# The workers alive now and lately: each registers when it starts, heartbeats with its lease renewal
# and deletes its row when it stops cleanly. Times are the database's; one whose `expires_at` has
# passed is dead. What each holds is read from actions.lease_owner.
workers = Table(
    "workers",
    metadata,
    Column("id", String(128), primary_key=True),  # as in actions.lease_owner
    Column("host", String(256), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("kind", String(16), nullable=False),  # embedded (in `clampdown serve`) or standalone
    Column("started_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),  # last_seen_at plus the worker's lease
    Column("inflight", Integer, nullable=False, server_default=text("0")),
    Index("ix_workers_expires_at", "expires_at"),
)

# The Security Event Tokens received from Shared Signals transmitters, by issuer and jti: a SET
# whose jti is here is a replay (RFC 8417 section 4.1). A row outlives the window in which its
# SET's `iat` is accepted, then is pruned: an older SET is refused by its `iat` alone.
ssf_received_jtis = Table(
    "ssf_received_jtis",
    metadata,
    Column("issuer", String(512), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("receiver", String(64), nullable=False),  # the [ssf.receivers.NAME] it came through
    Column("issued_at", UTCDateTime, nullable=False),  # the SET's iat
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_ssf_received_jtis_issued_at", "issued_at"),
)

# Shared Signals out (issue 21): the streams receivers hold with Clampdown as transmitter (SSF 1.0
# section 8), the subjects added to or removed from each, and the outbox of signed SETs: a SET is
# committed with its cause (a containment's last step, its release) and pushed, or polled, from here.
ssf_streams = Table(
    "ssf_streams",
    metadata,
    Column("stream_id", String(64), primary_key=True),
    Column("owner", String(255), nullable=False),  # the API user who created it, or "config:NAME"
    Column("description", String(1024), nullable=True),
    Column("audience", JSON, nullable=False),  # the `aud` values of its SETs
    Column("events_requested", JSON, nullable=False),  # event type URIs
    Column("delivery_method", String(64), nullable=False),  # urn:ietf:rfc:8935 (push) or 8936 (poll)
    Column("endpoint_url", String(2048), nullable=True),  # push: the receiver's endpoint
    Column("authorization_header", Text, nullable=True),  # push: sent with each SET, never shown back
    Column("status", String(16), nullable=False),  # enabled, paused, disabled
    Column("status_reason", String(1024), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("verified_at", UTCDateTime, nullable=True),  # the last verification the receiver asked for
    Index("ix_ssf_streams_owner", "owner"),
)

ssf_stream_subjects = Table(
    "ssf_stream_subjects",
    metadata,
    Column(
        "stream_id", String(64), ForeignKey("ssf_streams.stream_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("subject_key", String(512), primary_key=True),  # "email:alice@corp.example", lower case
    Column("subject", JSON, nullable=False),  # the subject identifier as the receiver gave it
    Column("included", Boolean, nullable=False),  # added (true) or removed (false)
    Column("updated_at", UTCDateTime, nullable=False),
)

ssf_outbox = Table(
    "ssf_outbox",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("stream_id", String(64), ForeignKey("ssf_streams.stream_id", ondelete="CASCADE"), nullable=False),
    Column("jti", String(64), nullable=False, unique=True),
    Column("event_types", JSON, nullable=False),  # the URIs of its events
    Column("subject", String(1024), nullable=True),  # whom it is about, for people reading the outbox
    Column("containment_id", ID, nullable=True),  # the containment it announces, if any
    Column("token", Text, nullable=False),  # the signed SET (compact JWS)
    # push: pending, delivered, failed; poll: pending (until acknowledged), acknowledged, refused
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_ssf_outbox_due", "status", "next_attempt_at"),
    Index("ix_ssf_outbox_stream", "stream_id", "status", "id"),
)

# A containment is announced once per phase ("contained" when its steps have all ended, "released"
# when its release has): the key that keeps a retried commit or a second worker from announcing twice.
ssf_announcements = Table(
    "ssf_announcements",
    metadata,
    Column("containment_id", ID, primary_key=True),
    Column("phase", String(16), primary_key=True),
    Column("announced_at", UTCDateTime, nullable=False),
)
