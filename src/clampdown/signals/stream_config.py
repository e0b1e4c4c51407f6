"""A stream of Clampdown's transmitter as SSF 1.0 section 8.1.1 describes it, and the checks of what a
receiver asks of one: its delivery (push to its endpoint, RFC 8935, or poll of Clampdown's, RFC 8936),
the events it asks for, its description, the subjects it adds or removes (RFC 9493).

Receiver-supplied members are checked here, each refusal an InvalidInput naming the member. Of the
transmitter-supplied ones a request may repeat, `iss` and `aud` must then match (as Okta's API asks);
`events_supported`, `events_delivered` and `min_verification_interval` are read-only echoes and ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from clampdown.audit.ssf_out import subject_key
from clampdown.errors import InvalidInput
from clampdown.limits import (
    MAX_SSF_AUDIENCES,
    MAX_SSF_AUTHORIZATION,
    MAX_SSF_DESCRIPTION,
    MAX_SSF_EVENT_TYPE,
    MAX_SSF_EVENTS_REQUESTED,
    MAX_SSF_SUBJECT_BYTES,
    MAX_SSF_SUBJECT_KEY,
    MAX_SSF_URL,
    clean_text,
    optional_text,
)
from clampdown.secevents import DELIVERY_METHODS, POLL, PUSH, SUPPORTED_EVENTS

CONFIG_OWNER = "config:"  # the owner of a declared stream is "config:NAME"
SUBJECT_FORMATS = ("email", "iss_sub", "opaque")  # those subject_key() files, so a person is matched


@dataclass(frozen=True)
class Delivery:
    """How a stream's SETs travel: pushed to the receiver's endpoint_url (with its Authorization
    header), or polled by the receiver from Clampdown's poll endpoint."""

    method: str
    endpoint_url: str | None = None
    authorization_header: str | None = None  # push only; stored, never shown back


@dataclass(frozen=True)
class StreamRequest:
    """The members of a stream configuration a create, update (PATCH) or replace (PUT) gives; None
    for one not given (`description` given as null clears it: `description_given`)."""

    delivery: Delivery | None = None
    events_requested: Sequence[str] | None = None
    description: str | None = None
    description_given: bool = False
    iss: str | None = None  # transmitter-supplied: if stated, must be Clampdown's issuer
    aud: str | Sequence[str] | None = None  # create: the audience asked for; else must match


@dataclass(frozen=True)
class Stream:
    """One stream as stored (ssf_streams); `has_authorization` says whether a push header is held."""

    stream_id: str
    owner: str
    description: str | None
    audience: tuple[str, ...]
    events_requested: tuple[str, ...]
    delivery_method: str
    endpoint_url: str | None
    has_authorization: bool
    status: str
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    verified_at: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Stream:
        return cls(
            row["stream_id"], row["owner"], row["description"], tuple(row["audience"] or ()),
            tuple(row["events_requested"] or ()), row["delivery_method"], row["endpoint_url"],
            bool(row["authorization_header"]), row["status"], row["status_reason"], row["created_at"],
            row["updated_at"], row["verified_at"],
        )  # fmt: skip

    @property
    def declared(self) -> bool:
        """Declared in [ssf.transmitter.streams.NAME]: not managed through the API."""
        return self.owner.startswith(CONFIG_OWNER)

    @property
    def delivery(self) -> str:
        """push or poll."""
        return {PUSH: "push", POLL: "poll"}.get(self.delivery_method, self.delivery_method)

    @property
    def events_delivered(self) -> list[str]:
        return [e for e in self.events_requested if e in SUPPORTED_EVENTS]

    def configuration(self, issuer: str, min_verification_interval: int) -> dict[str, Any]:
        """The stream configuration as SSF 1.0 section 8.1.1 shows it (never the push header)."""
        delivery: dict[str, Any] = {"method": self.delivery_method}
        if self.delivery_method == POLL:
            delivery["endpoint_url"] = poll_url(issuer, self.stream_id)
        elif self.endpoint_url is not None:
            delivery["endpoint_url"] = self.endpoint_url
        config: dict[str, Any] = {
            "stream_id": self.stream_id,
            "iss": issuer,
            "aud": self.audience[0] if len(self.audience) == 1 else list(self.audience),
            "events_supported": list(SUPPORTED_EVENTS),
            "events_requested": list(self.events_requested),
            "events_delivered": self.events_delivered,
            "delivery": delivery,
            "min_verification_interval": min_verification_interval,
        }
        if self.description is not None:
            config["description"] = self.description
        return config


def api_url(issuer: str, path: str) -> str:
    """An endpoint of Clampdown's API under its issuer (its public address)."""
    return f"{issuer.rstrip('/')}/api/v1/ssf/{path}"


def poll_url(issuer: str, stream_id: str) -> str:
    """Where the receiver of a poll stream polls it (RFC 8936)."""
    return api_url(issuer, f"streams/{stream_id}/poll")


def _address(name: str, value: str) -> str:
    text = clean_text(name, value, MAX_SSF_URL, required=True)
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.netloc or any(c.isspace() for c in text):
        raise InvalidInput(f"{name}: {text[:100]!r} is not an http(s) address")
    return text


def check_delivery(delivery: Delivery) -> Delivery:
    """The delivery as stored: push with its endpoint (and header), or poll (its endpoint is
    Clampdown's, so one given is ignored)."""
    if delivery.method not in DELIVERY_METHODS:
        raise InvalidInput(
            f"delivery.method: {delivery.method[:100]!r} is not supported; use {PUSH} (push) or {POLL} (poll)"
        )
    if delivery.method == POLL:
        if delivery.authorization_header is not None:
            raise InvalidInput(
                "delivery.authorization_header: a poll stream has none; the receiver polls with its API token"
            )
        return Delivery(POLL)
    if delivery.endpoint_url is None:
        raise InvalidInput("delivery.endpoint_url: a push stream needs the receiver's endpoint")
    header = delivery.authorization_header
    if header is not None:
        header = clean_text("delivery.authorization_header", header, MAX_SSF_AUTHORIZATION, required=True)
        if any(c in header for c in "\r\n") or not header.isprintable():
            raise InvalidInput("delivery.authorization_header: must be one line of printable characters")
    return Delivery(PUSH, _address("delivery.endpoint_url", delivery.endpoint_url), header)


def check_events(events: Sequence[str]) -> tuple[str, ...]:
    """The event type URIs asked for, once each, in the order given (unsupported ones are kept:
    events_delivered leaves them out)."""
    if len(events) > MAX_SSF_EVENTS_REQUESTED:
        raise InvalidInput(f"events_requested: more than {MAX_SSF_EVENTS_REQUESTED} event types")
    found: dict[str, None] = {}
    for event in events:
        found[clean_text("events_requested", event, MAX_SSF_EVENT_TYPE, required=True)] = None
    return tuple(found)


def check_description(value: str | None) -> str | None:
    return optional_text("description", value, MAX_SSF_DESCRIPTION)


def check_audience(value: str | Sequence[str]) -> tuple[str, ...]:
    """The `aud` values a receiver asks for: one or a few non-empty strings."""
    values = [value] if isinstance(value, str) else list(value)
    if not values or len(values) > MAX_SSF_AUDIENCES:
        raise InvalidInput(f"aud: give 1 to {MAX_SSF_AUDIENCES} values")
    return tuple(dict.fromkeys(clean_text("aud", v, MAX_SSF_URL, required=True) for v in values))


def default_audience(delivery: Delivery, owner: str) -> tuple[str, ...]:
    """A stream's `aud` when the receiver asks for none: the origin of a push endpoint (the
    receiver's address), or for a poll stream the owner's name (who polls it)."""
    if delivery.method == PUSH and delivery.endpoint_url is not None:
        parts = urlsplit(delivery.endpoint_url)
        return (f"{parts.scheme}://{parts.netloc}",)
    return (owner,)


def check_stated(request: StreamRequest, issuer: str, audience: tuple[str, ...] | None) -> None:
    """Transmitter-supplied members a request repeats must match: `iss` always, `aud` when the
    stream has one already (`audience`)."""
    if request.iss is not None and request.iss.rstrip("/") != issuer.rstrip("/"):
        raise InvalidInput(f"iss: {request.iss[:100]!r} is not this transmitter's issuer {issuer}")
    if audience is not None and request.aud is not None and check_audience(request.aud) != audience:
        raise InvalidInput("aud: is set by the transmitter and cannot be changed; leave it out or repeat it")


def check_subject(subject: Any) -> tuple[str, dict[str, Any]]:
    """A subject identifier (RFC 9493) a receiver adds or removes: (its key, itself)."""
    if not isinstance(subject, dict):
        raise InvalidInput("subject: must be a subject identifier object with a format")
    try:
        size = len(json.dumps(subject, ensure_ascii=False).encode())
    except (TypeError, ValueError):
        raise InvalidInput("subject: is not JSON") from None
    if size > MAX_SSF_SUBJECT_BYTES:
        raise InvalidInput(f"subject: longer than {MAX_SSF_SUBJECT_BYTES} bytes")
    key = subject_key(subject)
    if key is None:
        fmt = subject.get("format")
        shown = repr(fmt)[:80] if fmt is not None else "none"
        raise InvalidInput(
            f"subject: format {shown} (with its members) is not one Clampdown matches people by: "
            f"use {', '.join(SUBJECT_FORMATS)}"
        )
    if not key.split(":", 1)[1].strip() or key.endswith(" "):
        raise InvalidInput("subject: its members must not be empty")
    if "\x00" in key:
        raise InvalidInput("subject: must not contain a NUL character")
    if len(key) > MAX_SSF_SUBJECT_KEY:
        raise InvalidInput(f"subject: longer than {MAX_SSF_SUBJECT_KEY} characters")
    return key, subject
