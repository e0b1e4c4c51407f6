"""Where a browser may be sent after signing in: a path on this site, nothing else.

Browsers forgive a lot in a URL: they drop tabs and newlines anywhere, read a backslash as a
slash and `//host` as another origin. So a `next` is refused unless it is plainly a path: it
starts with a single "/", has no control character, no whitespace of any script, no backslash,
and parses with neither a scheme nor a host.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

from clampdown.limits import MAX_NEXT_URL

DEFAULT_LANDING = "/users"
# Control and format characters (a zero-width joiner is as invisible as a tab), and every separator.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def _has_hidden_characters(value: str) -> bool:
    return any(
        ord(ch) < 0x20 or ord(ch) == 0x7F or ch.isspace() or unicodedata.category(ch) in _REFUSED_CATEGORIES
        for ch in value
    )


def is_same_site_path(value: str | None) -> bool:
    """True when `value` can only mean a path on this site."""
    if not value or len(value) > MAX_NEXT_URL:
        return False
    if _has_hidden_characters(value) or "\\" in value:
        return False
    if not value.startswith("/") or value.startswith("//"):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unbalanced "[" that urlsplit takes for an IPv6 host
        return False
    return not parts.scheme and not parts.netloc


def safe_next(value: str | None, default: str = DEFAULT_LANDING) -> str:
    """`value` when it is a path on this site, else `default`: never an open redirect."""
    return value if value is not None and is_same_site_path(value) else default
