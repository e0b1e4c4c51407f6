"""Every input limit in one place, and the one check that applies them.

The services check every target, reason, reference and filter against these before anything
reaches the store or a provider; the API's schema declares the same numbers so clients see them.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from clampdown.errors import InvalidInput

MAX_TARGET = 512  # a user reference: name, UPN, email, SID or provider id (actions.target)
MAX_REASON = 4000  # why an action is taken, a decision's note, a description
MAX_ACTION_TYPE = 64  # a catalog id such as okta.suspend_user
MAX_PROVIDER = 32
MAX_INSTANCE = 64  # a configured directory's name: the NAME of [providers.NAME]
MAX_USERNAME = 256  # a Clampdown user (requested_by)
MAX_PASSWORD = 1024
MAX_BATCH_ID = 64
MAX_IDEMPOTENCY_KEY = 256
MAX_BULK_IDEMPOTENCY_KEY = 200  # suffixed with ":<target>" per action of the bulk
MAX_BULK = 100_000  # targets of one bulk request
MAX_LOCATED_BULK = 5_000  # targets of a bulk whose directories are found at request time (no instance)
MAX_PLAN_TARGETS = 1000  # targets of one dry-run
MAX_DECISION_IDS = 1000  # actions approved or rejected at once
MAX_PAGE = 1000  # actions listed per page
MAX_PLAYBOOK_NAME = 64
MAX_CURSOR = 64
MAX_NAME = 200  # a saved query, a detection rule, a result column
MAX_QUERY = 32_000  # a hunting query, in characters
MAX_QUERY_NESTING = 32  # brackets open at once in a KQL query: deeper input is refused before parsing
KQL_TRANSLATION_SECONDS = 10.0  # the KQL translator is stopped after this (or the query's time limit)
MAX_RESULT_BYTES = 16 * 2**20  # a hunt's rows as JSON: fetching stops there and the result is truncated
MAX_NEXT_URL = 1024
MAX_ID = 2**63 - 1  # ids are 64-bit in PostgreSQL

# People search (issue 19): a fragment of a name, login or address, asked of every directory.
MIN_SEARCH_TEXT = 2  # one letter matches half a directory: not worth asking any
MAX_SEARCH_TEXT = 64
SEARCH_PUNCTUATION = " .@_'-+"  # besides letters and digits: what names and addresses hold
MAX_SEARCH_PAGE = 50  # people per page
MAX_SEARCH_PAGES = 20  # pages deep: past that, a longer fragment finds them sooner
SEARCH_WAIT_SECONDS = 2.0  # a directory slower than this shows as "still answering"

# Actions (issue 14): times a request or filter may name, and the stored idempotency key.
# Outside these a time is a typo, and near the ends of datetime an offset overflows on conversion.
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(9999, 1, 1, tzinfo=UTC)
MAX_SECRET_KEY = 64  # a one-time key to open a sealed secret (43 characters of base64)

# Reliability (issue 15): keys built from outside data fit their columns, and bulks are written in
# chunks, each its own transaction, so no one request holds the database for long.
MAX_ACCOUNT_ID = 256  # a provider's account id as stored for lookups (actions.account_id)
BULK_CHUNK = 1000  # actions of a bulk request inserted per transaction

# The console (issue 19): an incident reference is a ticket id (INC-42, SEC-1234, CS0012345),
# put into a link template, so it is short and of the characters ticket systems use.
MAX_INCIDENT = 64
INCIDENT_CHARACTERS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#/-]*")
MAX_ERROR_CODE = 64  # an action's error code (actions.error_code), as a filter

# Shared Signals out (issue 21): what a receiver may ask of its streams with Clampdown.
MAX_SSF_STREAMS_PER_OWNER = 10  # streams one API user (one receiver) holds
MAX_SSF_SUBJECTS_PER_STREAM = 10_000  # subjects added to or removed from one stream
MAX_SSF_STREAM_ID = 64  # ssf_streams.stream_id
MAX_SSF_URL = 2048  # a push endpoint_url, an aud value
MAX_SSF_AUDIENCES = 10  # values of a stream's aud
MAX_SSF_AUTHORIZATION = 4096  # the Authorization header pushed SETs carry
MAX_SSF_DESCRIPTION = 1024  # a stream's description, a status reason
MAX_SSF_EVENTS_REQUESTED = 50  # event type URIs a stream asks for (Okta's limit too)
MAX_SSF_EVENT_TYPE = 256
MAX_SSF_SUBJECT_BYTES = 2048  # one subject identifier, as JSON
MAX_SSF_SUBJECT_KEY = 512  # ssf_stream_subjects.subject_key
MAX_SSF_STATE = 1024  # the state a receiver puts in a verification request
MAX_SSF_POLL_EVENTS = 1000  # SETs one poll answers (RFC 8936 maxEvents)
MAX_SSF_POLL_ACKS = 1000  # jtis one poll acknowledges or refuses
MAX_SSF_JTI = 256
SSF_LONG_POLL_SECONDS = 5.0  # a poll with returnImmediately false waits this long at most for a SET


def clean_text(field: str, value: str | None, max_length: int, *, required: bool = False) -> str:
    """`value` stripped; InvalidInput naming `field` if it has a NUL (PostgreSQL cannot store one),
    is longer than `max_length`, or is empty while `required`."""
    text = (value or "").strip()
    if "\x00" in text:
        raise InvalidInput(f"{field}: must not contain a NUL character")
    if len(text) > max_length:
        raise InvalidInput(f"{field}: longer than {max_length} characters")
    if required and not text:
        raise InvalidInput(f"{field}: must not be empty")
    return text


def optional_text(field: str, value: str | None, max_length: int) -> str | None:
    """Like `clean_text`, but None (or blank) stays None."""
    text = clean_text(field, value, max_length)
    return text or None


def clean_search_text(value: str | None) -> str:
    """A search fragment, stripped; InvalidInput if shorter than MIN_SEARCH_TEXT, longer than
    MAX_SEARCH_TEXT, or holding a character other than letters, digits and SEARCH_PUNCTUATION
    (no wildcards, quotes or brackets: the directories' query languages give those a meaning)."""
    text = clean_text("query", value, MAX_SEARCH_TEXT)
    if len(text) < MIN_SEARCH_TEXT:
        raise InvalidInput(f"query: type at least {MIN_SEARCH_TEXT} characters of a name, login or email")
    odd = sorted({c for c in text if not (c.isalnum() or c in SEARCH_PUNCTUATION)})
    if odd:
        shown = " ".join(repr(c) for c in odd[:5])
        raise InvalidInput(
            f"query: {shown} cannot be searched for; use letters, digits, spaces and . @ _ ' - +"
        )
    return text


def fit_key(value: str, max_length: int) -> str:
    """`value` if it fits `max_length` characters, else its start and a SHA-256 digest of all of it,
    `max_length` long: a key made from outside data (a provider's id, an event's user name) always
    fits its column and two different values never share one."""
    if len(value) <= max_length:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{value[: max_length - len(digest) - 1]}#{digest}"


def clean_time(field: str, value: datetime | None) -> datetime | None:
    """`value` in UTC; InvalidInput naming `field` if it has no time zone or lies outside
    EARLIEST_TIME..LATEST_TIME (where converting it to UTC could overflow)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{field}: give a time zone, e.g. 2026-11-30T08:00:00Z")
    if not EARLIEST_TIME <= value < LATEST_TIME:  # aware comparison never overflows
        raise InvalidInput(
            f"{field}: {value.isoformat()} is out of range; give a time from "
            f"{EARLIEST_TIME.date().isoformat()} to before {LATEST_TIME.date().isoformat()}"
        )
    return value.astimezone(UTC)


def clean_id(field: str, value: int) -> int:
    """`value` if it is a positive id a 64-bit database integer holds; InvalidInput naming `field`."""
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(f"{field}: {value} is not an id (1 to {MAX_ID})")
    return value


INCIDENT_PLACEHOLDER = "{incident}"  # where a link template ([console] incident_link) puts the id


def incident_link(template: str | None, incident: str | None) -> str | None:
    """The incident's address by the template (its id URL-encoded), or None without either."""
    if template is None or incident is None:
        return None
    from urllib.parse import quote

    return template.replace(INCIDENT_PLACEHOLDER, quote(incident, safe=""))


def clean_incident(value: str | None) -> str | None:
    """An incident reference (a ticket id), stripped, or None if empty; InvalidInput if it is too
    long or holds characters a ticket id does not (spaces, quotes, brackets)."""
    text = clean_text("incident", value, MAX_INCIDENT)
    if not text:
        return None
    if not INCIDENT_CHARACTERS.fullmatch(text):
        raise InvalidInput(
            f"incident: {text[:80]!r} is not a ticket id: use letters, digits and . _ : # / - "
            "(starting with a letter or digit), e.g. INC-42"
        )
    return text
