"""The one comparison of a secret someone sent with the one expected."""

from __future__ import annotations

import hmac


def same_secret(given: str, expected: str) -> bool:
    """In constant time. Compared as bytes: `hmac.compare_digest` raises on a str with characters
    beyond ASCII, and a hostile header must be refused, not make a 500."""
    return hmac.compare_digest(given.encode(), expected.encode())
