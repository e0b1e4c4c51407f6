"""Error types shared by every layer; the edges turn them into exit codes, HTTP statuses and UI text."""

from __future__ import annotations


class ClampdownError(Exception):
    """Base error: `code` is stable for machines, the message is written for a person."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidInput(ClampdownError):
    """The request itself is wrong (unknown action, empty reason, malformed value)."""

    code = "invalid_input"


class ConfigError(ClampdownError):
    """The configuration is missing or wrong; the message names every problem."""

    code = "config_error"


class NotFound(ClampdownError):
    """A user, account or action does not exist."""

    code = "not_found"


class Forbidden(ClampdownError):
    """The caller, or the provider's action account, lacks a right."""

    code = "forbidden"


class Conflict(ClampdownError):
    """The request clashes with the current state (cancel a running action, undo twice)."""

    code = "conflict"


class IdentityConflict(Conflict):
    """A reference's accounts in different providers do not link by a strong anchor (SID, UPN,
    login), or their anchors disagree: Clampdown will not guess which person is meant."""

    code = "identity_conflict"


class TooManyAttempts(ClampdownError):
    """Too many failed sign-ins: the caller must wait `retry_after` seconds."""

    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailable(ClampdownError):
    """The database cannot be reached."""

    code = "database_unavailable"


class ProviderError(ClampdownError):
    """A provider refused or failed an operation."""

    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        provider_request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.provider_request_id = provider_request_id


class PermanentError(ProviderError):
    """Retrying cannot help: the action fails at once with this message."""

    code = "permanent_error"


class TransientError(ProviderError):
    """Worth retrying; `retry_after` is the provider's own hint in seconds, when it gave one."""

    code = "transient_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        provider_request_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, provider_request_id=provider_request_id)
        self.retry_after = retry_after


class AccountNotFound(PermanentError, NotFound):
    """The provider has no account matching the reference."""

    code = "no_such_user"


class ActionAccountError(PermanentError, Forbidden):
    """The configured action account cannot authenticate or lacks a right."""

    code = "action_account"
