"""userAccountControl bits and AD's FILETIME timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

ACCOUNTDISABLE = 0x2
LOCKOUT = 0x10
PASSWD_NOTREQD = 0x20
NORMAL_ACCOUNT = 0x200
DONT_EXPIRE_PASSWORD = 0x10000
SMARTCARD_REQUIRED = 0x40000
PASSWORD_EXPIRED = 0x800000

UAC_NAMES: dict[int, str] = {
    0x1: "SCRIPT",
    ACCOUNTDISABLE: "ACCOUNTDISABLE",
    0x8: "HOMEDIR_REQUIRED",
    LOCKOUT: "LOCKOUT",
    PASSWD_NOTREQD: "PASSWD_NOTREQD",
    0x40: "PASSWD_CANT_CHANGE",
    0x80: "ENCRYPTED_TEXT_PWD_ALLOWED",
    NORMAL_ACCOUNT: "NORMAL_ACCOUNT",
    DONT_EXPIRE_PASSWORD: "DONT_EXPIRE_PASSWORD",
    SMARTCARD_REQUIRED: "SMARTCARD_REQUIRED",
    0x80000: "TRUSTED_FOR_DELEGATION",
    0x100000: "NOT_DELEGATED",
    0x400000: "DONT_REQ_PREAUTH",
    PASSWORD_EXPIRED: "PASSWORD_EXPIRED",
    0x1000000: "TRUSTED_TO_AUTH_FOR_DELEGATION",
}

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
# pwdLastSet / lockoutTime / lastLogonTimestamp use 0 and this for "never".
_NEVER = 0x7FFFFFFFFFFFFFFF


def flag_names(uac: int) -> list[str]:
    """The names of the bits set in a userAccountControl value."""
    return [name for bit, name in UAC_NAMES.items() if uac & bit]


def filetime_to_iso(value: int | None) -> str | None:
    """A FILETIME (100 ns since 1601) as ISO 8601 UTC, or None for 0 / never / absent."""
    if not value or value >= _NEVER or value < 0:
        return None
    return (_FILETIME_EPOCH + timedelta(microseconds=value // 10)).isoformat()
