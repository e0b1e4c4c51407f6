"""HTTP statuses for Clampdown's error types."""

from __future__ import annotations

from clampdown.errors import (
    ClampdownError,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StoreUnavailable,
    TransientError,
)

_STATUSES: list[tuple[type[ClampdownError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (StoreUnavailable, 503),
    (TransientError, 503),
    (ConfigError, 500),
]


def status_for(exc: ClampdownError) -> int:
    """The HTTP status for an error type; 502 for a provider's refusal, 500 otherwise."""
    return next((s for cls, s in _STATUSES if isinstance(exc, cls)), 502)
