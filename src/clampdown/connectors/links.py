"""Links a provider hands back (Graph's `@odata.nextLink`, Okta's `Link: rel="next"`) are followed
only on the configured origin: a link to another host would carry the action account's token there."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int | None]:
    return scheme.lower(), (host or "").lower(), port or _DEFAULT_PORTS.get(scheme.lower())


def same_origin_path(link: str, base_url: str) -> str | None:
    """`link` as a path (and query) relative to `base_url`, when it has the same scheme, host and
    port, no user info, and lies under the base URL's path; None for any other link."""
    try:
        target, base = urlsplit(link), urlsplit(base_url)
        target_port, base_port = target.port, base.port
    except ValueError:  # a malformed port or address
        return None
    if target.username is not None or target.password is not None:
        return None
    if _origin(target.scheme, target.hostname, target_port) != _origin(base.scheme, base.hostname, base_port):
        return None
    prefix = base.path.rstrip("/")
    if target.path != prefix and not target.path.startswith(prefix + "/"):
        return None
    rest = target.path[len(prefix) :] or "/"
    if "/../" in rest + "/" or "/./" in rest + "/":
        return None
    return rest + (f"?{target.query}" if target.query else "")


def is_relative_path(path: str) -> bool:
    """Whether `path` is a path on the configured host (not an absolute or scheme-relative URL)."""
    return path.startswith("/") and not path.startswith("//") and "://" not in path.split("?", 1)[0]


def next_link(link_headers: list[str]) -> str | None:
    """The `rel="next"` target among an answer's `Link` headers (RFC 8288). Okta sends one header
    per relation (`rel="self"`, then `rel="next"`); a proxy may join them into one, comma
    separated: both read the same. None when there is no next page."""
    for header in link_headers:
        for match in _LINK_VALUE.finditer(header):
            rels = match.group("rel") or match.group("rel_token") or ""
            if "next" in rels.lower().split():
                return match.group("target")
    return None


# `<target>; ...; rel="a b"` or `rel=a`, with any other parameters before or after.
_LINK_VALUE = re.compile(
    r'<(?P<target>[^>]*)>(?P<params>(?:\s*;\s*[^;,<]*)*?\s*;\s*rel\s*=\s*(?:"(?P<rel>[^"]*)"|(?P<rel_token>[^\s;,"]+)))'
)
