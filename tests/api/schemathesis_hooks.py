"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): besides what the schema allows, the edge
values that once made the server fail: dates at the ends of the calendar with offsets that push
them past it, and cursors and ids beyond what the database's integers hold."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import strategies as st

DATE_EDGES = (
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-12-01T25:00:00Z",
    "2026-12-01T00:00:00+24:00",
    "2026-12-01",
    "+10000-01-01T00:00:00Z",
    "now",
)
NUMBER_EDGES = (
    "0",
    "-1",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999",
    "9" * 64,
    "1e308",
    "0x10",
    " 1",
)
# Console period filters (`since=24h`), parsed by the console, and the ends of their range.
PERIOD_EDGES = ("24h", "99999999", "0h", "-1h", "7d", "9999999d")

EDGES: dict[str, tuple[str, ...]] = {
    "since": DATE_EDGES + PERIOD_EDGES,
    "until": DATE_EDGES,
    "cursor": NUMBER_EDGES,
    "before": NUMBER_EDGES,
}

schemathesis.openapi.format(
    "date-time", st.one_of(st.sampled_from(DATE_EDGES), st.datetimes().map(lambda d: d.isoformat() + "Z"))
)


def _declared(context: schemathesis.HookContext) -> set[str]:
    operation = context.operation
    if operation is None:
        return set()
    return {p.name for p in operation.query}


@schemathesis.hook
def flatmap_query(context: schemathesis.HookContext, query: dict[str, Any] | None) -> st.SearchStrategy[Any]:
    """Each declared date or cursor parameter is kept as generated, or set to one of its edges."""
    names = sorted(_declared(context) & set(EDGES))
    if not names:
        return st.just(query)
    choices = [st.one_of(st.just(None), st.sampled_from(EDGES[name])) for name in names]

    def apply(values: tuple[str | None, ...]) -> dict[str, Any]:
        result = dict(query or {})
        for name, value in zip(names, values, strict=True):
            if value is not None:
                result[name] = value
        return result

    return st.tuples(*choices).map(apply)


@schemathesis.serializer("application/secevent+jwt")
def _security_event_token(ctx: Any, value: Any) -> bytes:
    """A Security Event Token is a compact JWS: the generated string as it is (RFC 8417)."""
    return value.encode() if isinstance(value, str) else str(value).encode()
