"""Okta's SCIM-like filter and search expressions: `profile.login eq "a@b" and status eq "ACTIVE"`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from clampdown_lab.okta_emulator.state import OktaApiError, UserRecord, okta_timestamp

Predicate = Callable[[Any], bool]
# Reads a property of the object an expression is evaluated on; a list matches if any item does.
Resolver = Callable[[Any, str], Any]

_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|([A-Za-z_][\w.]*))')
_OPERATORS = {"eq", "sw", "co", "pr", "gt", "ge", "lt", "le"}
# listUsers `filter` allows only these properties, and only `eq` (plus ordering on lastUpdated).
FILTER_ATTRIBUTES = {
    "status",
    "lastUpdated",
    "id",
    "profile.login",
    "profile.email",
    "profile.firstName",
    "profile.lastName",
}
# Users `search` allows `co` (contains) only on these (the Users API reference).
CONTAINS_ATTRIBUTES = frozenset({"profile.firstName", "profile.lastName", "profile.email", "profile.login"})


def invalid_search(detail: str) -> OktaApiError:
    return OktaApiError(400, "E0000031", "Invalid search criteria.", (detail,))


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise invalid_search(f"cannot parse the expression near '{text[pos : pos + 20]}'")
        pos = match.end()
        if match.group(1):
            out.append(("(", "("))
        elif match.group(2):
            out.append((")", ")"))
        elif match.group(3) is not None:
            out.append(("str", match.group(3).replace('\\"', '"')))
        else:
            out.append(("word", match.group(4)))
    return out


def attribute_value(record: UserRecord, name: str) -> Any:
    """The value of a top-level property or `profile.x` of a user, as search compares it."""
    if name.startswith("profile."):
        return record.profile.get(name.removeprefix("profile."))
    epochs = {
        "lastUpdated": record.last_updated,
        "created": record.created,
        "statusChanged": record.status_changed,
        "activated": record.activated,
    }
    if name in epochs:
        value = epochs[name]
        return okta_timestamp(value) if value is not None else None
    return {"id": record.id, "status": record.status}.get(name)


class _Parser:
    def __init__(
        self, text: str, strict_filter: bool, resolve: Resolver, contains_on: frozenset[str] | None
    ) -> None:
        self.items = _tokens(text)
        self.pos = 0
        self.strict = strict_filter
        self.resolve = resolve
        self.contains_on = contains_on

    def peek(self) -> tuple[str, str] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def take(self) -> tuple[str, str]:
        item = self.peek()
        if item is None:
            raise invalid_search("the expression ends too early")
        self.pos += 1
        return item

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise invalid_search(f"unexpected '{self.peek()[1]}'")  # type: ignore[index]
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while (nxt := self.peek()) and nxt == ("word", "or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def conjunction(self) -> Predicate:
        parts = [self.term()]
        while (nxt := self.peek()) and nxt == ("word", "and"):
            self.take()
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def term(self) -> Predicate:
        kind, value = self.take()
        if kind == "(":
            inner = self.disjunction()
            if self.take()[0] != ")":
                raise invalid_search("missing ')'")
            return inner
        if kind != "word":
            raise invalid_search(f"expected a property name, got '{value}'")
        attribute = value
        op_kind, op = self.take()
        op = op.lower()
        if op_kind != "word" or op not in _OPERATORS:
            raise invalid_search(f"unsupported operator '{op}'")
        if self.strict:
            if attribute not in FILTER_ATTRIBUTES:
                raise invalid_search(f"filter does not support the property '{attribute}'")
            if op != "eq" and not (attribute == "lastUpdated" and op in {"gt", "ge", "lt", "le"}):
                raise invalid_search(f"filter does not support the operator '{op}' on '{attribute}'")
        if op == "co" and self.contains_on is not None and attribute not in self.contains_on:
            raise invalid_search(f"'co' is not supported on '{attribute}'")
        if op == "pr":
            resolve = self.resolve
            return lambda r: resolve(r, attribute) not in (None, "", [])
        str_kind, literal = self.take()
        if str_kind != "str":
            raise invalid_search("a value must be a quoted string")
        return _comparison(attribute, op, literal, self.resolve)


def _comparison(attribute: str, op: str, literal: str, resolve: Resolver) -> Predicate:
    wanted = literal.lower()

    def check(item: Any) -> bool:
        raw = resolve(item, attribute)
        values = raw if isinstance(raw, list) else [raw]
        return any(raw_value is not None and matches(str(raw_value).lower()) for raw_value in values)

    def matches(value: str) -> bool:
        if op == "eq":
            return value == wanted
        if op == "sw":
            return value.startswith(wanted)
        if op == "co":
            return wanted in value
        return {"gt": value > wanted, "ge": value >= wanted, "lt": value < wanted, "le": value <= wanted}[op]

    return check


def compile_expression(
    text: str,
    *,
    strict_filter: bool,
    resolve: Resolver = attribute_value,
    contains_on: frozenset[str] | None = None,
) -> Predicate:
    """A predicate for a `filter` (strict: Okta's limited properties) or `search` expression;
    `contains_on`: the only properties `co` may name (None: any)."""
    return _Parser(text, strict_filter, resolve, contains_on).parse()


def event_value(event: dict[str, Any], name: str) -> Any:
    """A dotted property of a System Log event; through `target` it yields every target's value."""
    current: Any = event
    for part in name.split("."):
        if isinstance(current, list):
            current = [item.get(part) for item in current if isinstance(item, dict)]
        elif isinstance(current, dict):
            current = current.get(part)
        else:
            return None
    return current
