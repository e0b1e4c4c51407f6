"""Graph's `$search` on directory objects (users), as documented for advanced queries.

`$search="displayName:mart" OR "mail:mart"`: each clause is quoted, `property:value`, joined by
AND / OR (AND binds first). `$search` works only with the request header `ConsistencyLevel:
eventual` (else 400 Request_UnsupportedQuery). displayName is tokenized (words split at spaces,
punctuation and lower-to-upper case changes) and a clause matches when every word of its value
starts a word of the property; on the other properties a clause matches the start of the value
(startswith). Values compare ignoring case; `\\"` and `\\\\` escape inside a clause.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

CONSISTENCY_HEADER = "consistencylevel"
NEEDS_CONSISTENCY = (
    "Request with $search query parameter only works through MSGraph with a special request header: "
    "'ConsistencyLevel: eventual'"
)
# The user properties Graph searches (tokenized: displayName; startswith: the others).
USER_SEARCH = {"displayName", "givenName", "surname", "mail", "userPrincipalName", "jobTitle", "department"}
TOKENIZED = {"displayName"}

_CLAUSE = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*')
_JOIN = re.compile(r"\s*(AND|OR)\s+")
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


class SearchError(ValueError):
    """A `$search` Graph refuses: the message is Graph's."""


def words(value: str) -> list[str]:
    """displayName's tokens: 'Alice Martin' -> alice, martin; 'aliceMartin' -> alice, martin."""
    return [w.lower() for w in _WORD.findall(value)]


def _clause(text: str, allowed: set[str]) -> Predicate:
    prop, sep, raw = text.partition(":")
    if not sep or not prop:
        raise SearchError(f"Syntax error: '{text}' is not a 'property:value' search clause.")
    if prop not in allowed:
        raise SearchError(f"Property '{prop}' does not support $search.")
    value = re.sub(r"\\(.)", r"\1", raw).lower()
    if prop in TOKENIZED:
        wanted = words(value)
        return lambda item: (
            bool(wanted)
            and all(any(token.startswith(w) for token in words(str(item.get(prop) or ""))) for w in wanted)
        )
    return lambda item: str(item.get(prop) or "").lower().startswith(value)


def parse_search(text: str, allowed: set[str] = USER_SEARCH) -> Predicate:
    """The predicate of a `$search` value; SearchError if Graph would refuse it."""
    groups: list[list[Predicate]] = [[]]
    pos = 0
    while True:
        match = _CLAUSE.match(text, pos)
        if match is None:
            raise SearchError(
                f"Syntax error: a quoted search clause was expected at position {pos} in '{text}'."
            )
        groups[-1].append(_clause(match.group(1), allowed))
        pos = match.end()
        if pos >= len(text):
            break
        join = _JOIN.match(text, pos)
        if join is None:
            raise SearchError(f"Syntax error: AND or OR was expected at position {pos} in '{text}'.")
        if join.group(1) == "OR":
            groups.append([])
        pos = join.end()
    return lambda item: any(all(p(item) for p in group) for group in groups)
