"""Views of Shared Signals: a stream of Clampdown's transmitter as the operator sees it (`clampdown
ssf streams`; receivers see theirs in SSF's own stream configuration shape), and their health
(signals/health.py), as GET /api/v1/ssf/health and the console's settings page show it."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from clampdown.views.base import View


class ReceivedSignalView(View):
    at: datetime
    receiver: str = Field(description="The receiver ([ssf.receivers.NAME]) the SET came through")
    outcome: str = Field(description="accepted or refused")
    event_types: list[str]
    subject: str | None = Field(description="The person's UPN, or the subject as the SET gave it")
    resolved: bool | None = Field(description="Accepted: whether the subject resolved to one person")
    err: str | None = Field(description="Refused: the RFC 8935 error code")
    description: str | None
    jti: str | None
    issuer: str | None
    delivery: str | None = Field(description="push or poll")


class ReceiverHealthView(View):
    name: str
    issuer: str
    delivery: str = Field(description="push, poll, or push and poll")
    configuration_url: str = Field(description="Where the transmitter's SSF configuration metadata is read")
    accepted_24h: int
    refused_24h: int
    last_accepted: ReceivedSignalView | None
    last_refused: ReceivedSignalView | None


class StreamView(View):
    """One stream (signals/stream_config.Stream); its push authorization header is never shown, only
    whether one is held."""

    stream_id: str
    owner: str = Field(description="The receiver's user, or config:NAME for a declared stream")
    description: str | None
    delivery: str = Field(description="push or poll")
    endpoint_url: str | None
    audience: list[str]
    events_requested: list[str]
    events_delivered: list[str]
    has_authorization: bool
    status: str = Field(description="enabled, paused or disabled")
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    verified_at: datetime | None


class StreamHealthView(View):
    stream_id: str
    owner: str
    description: str | None
    delivery: str = Field(description="push or poll")
    endpoint_url: str | None
    status: str = Field(description="enabled, paused or disabled")
    status_reason: str | None
    events_requested: list[str]
    verified_at: datetime | None
    counts: dict[str, int] = Field(description="The stream's outbox rows by status")
    last_delivered_at: datetime | None
    last_error: str | None
    oldest_pending_at: datetime | None
    oldest_pending_seconds: float | None
    health: str = Field(description="ok, backlog (a SET pending over 5 minutes), failing (the last delivery "
                        "failed), paused or disabled")  # fmt: skip
    health_reason: str


class TransmitterHealthView(View):
    issuer: str
    metadata_url: str = Field(description="Clampdown's SSF configuration metadata, as receivers find it")
    kids: list[str] = Field(description="The kids of the published JWKS, the signing key's first")
    key_problem: str | None = Field(description="Why the signing keys could not be read")
    streams: list[StreamHealthView]


class SentSignalView(View):
    at: datetime
    stream_id: str
    event_types: list[str]
    subject: str | None
    containment_id: int | None
    status: str = Field(description="push: pending, delivered, failed; poll: pending, acknowledged, refused")
    attempts: int
    delivered_at: datetime | None
    last_error: str | None
    jti: str


class SignalsHealthView(View):
    generated_at: datetime
    receivers: list[ReceiverHealthView]
    transmitter: TransmitterHealthView | None = Field(description="None: no transmitter configured")
    received: list[ReceivedSignalView] = Field(description="The last SETs received, accepted or refused")
    sent: list[SentSignalView] = Field(description="The last SETs Clampdown queued, newest first")
