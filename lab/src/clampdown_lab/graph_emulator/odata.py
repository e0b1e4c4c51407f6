"""The small part of OData query syntax Graph clients use here: `$filter` comparisons joined by
`and`/`or`, `startswith(...)`, `in (...)`, `$select` and opaque `$skiptoken` paging."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>\(|\)|,)|(?P<word>[A-Za-z_@.][\w.@/]*|[-+\d:.TZ]+))"
)

Predicate = Callable[[dict[str, Any]], bool]


class UnsupportedQuery(ValueError):
    """A $filter the resource does not support; `prop` names the property at fault, if known."""

    def __init__(self, message: str, prop: str | None = None) -> None:
        super().__init__(message)
        self.prop = prop


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise UnsupportedQuery(f"Invalid filter clause: syntax error at position {pos} in '{text}'.")
        out.append(match.group(0).strip())
        pos = match.end()
    return out


def _literal(token: str) -> Any:
    if token.startswith("'"):
        return token[1:-1].replace("''", "'")
    if token in ("true", "false"):
        return token == "true"
    if token == "null":
        return None
    if re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z?", token):
        return datetime.fromisoformat(token.replace("Z", "+00:00"))
    try:
        return float(token) if "." in token else int(token)
    except ValueError:
        raise UnsupportedQuery(f"Invalid filter clause: '{token}' is not a literal.") from None


def _value(item: dict[str, Any], prop: str) -> Any:
    value: Any = item
    for part in prop.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: (a.lower() == b.lower()) if isinstance(a, str) and isinstance(b, str) else a == b,
    "ne": lambda a, b: a != b,
    "ge": lambda a, b: a is not None and a >= b,
    "gt": lambda a, b: a is not None and a > b,
    "le": lambda a, b: a is not None and a <= b,
    "lt": lambda a, b: a is not None and a < b,
}


def parse_filter(text: str, allowed: dict[str, set[str]]) -> Predicate:
    """A predicate for `text`; `allowed` maps each filterable property to its operators."""
    tokens = _tokens(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise UnsupportedQuery(f"Invalid filter clause: unexpected end of '{text}'.")
        pos += 1
        return tokens[pos - 1]

    def check(prop: str, op: str) -> None:
        if op not in allowed.get(prop, set()):
            raise UnsupportedQuery(
                f"Unsupported or invalid query filter clause specified for property '{prop}'.", prop
            )

    def term() -> Predicate:
        first = take()
        if first == "(":
            inner = disjunction()
            if take() != ")":
                raise UnsupportedQuery("Invalid filter clause: ')' expected.")
            return inner
        if first.lower() == "startswith":
            take()  # (
            prop = take()
            take()  # ,
            prefix = _literal(take())
            take()  # )
            check(prop, "startswith")
            return lambda item: str(_value(item, prop) or "").lower().startswith(str(prefix).lower())
        prop, op = first, take().lower()
        if op == "in":
            check(prop, "in")
            if take() != "(":
                raise UnsupportedQuery("Invalid filter clause: '(' expected after 'in'.")
            values = []
            while True:
                values.append(_literal(take()))
                sep = take()
                if sep == ")":
                    break
            lowered = {v.lower() if isinstance(v, str) else v for v in values}
            return lambda item: (v.lower() if isinstance(v := _value(item, prop), str) else v) in lowered
        if op not in _COMPARE:
            raise UnsupportedQuery(f"Invalid filter clause: unknown operator '{op}'.")
        check(prop, op)
        literal = _literal(take())
        compare = _COMPARE[op]
        return lambda item: bool(compare(_value(item, prop), literal))

    def conjunction() -> Predicate:
        parts = [term()]
        while (peek() or "").lower() == "and":
            take()
            parts.append(term())
        return lambda item: all(p(item) for p in parts)

    def disjunction() -> Predicate:
        parts = [conjunction()]
        while (peek() or "").lower() == "or":
            take()
            parts.append(conjunction())
        return lambda item: any(p(item) for p in parts)

    predicate = disjunction()
    if pos != len(tokens):
        raise UnsupportedQuery(f"Invalid filter clause: unexpected '{tokens[pos]}'.")
    return predicate


def parse_select(text: str | None) -> list[str] | None:
    """The $select list, or None when absent."""
    if not text:
        return None
    return [p.strip() for p in text.split(",") if p.strip()]


def encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_skiptoken(token: str | None) -> int:
    """The offset an opaque skiptoken carries; ValueError if it is not one of ours."""
    if not token:
        return 0
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    if not raw.startswith("offset:"):
        raise ValueError("bad skiptoken")
    return int(raw.removeprefix("offset:"))
