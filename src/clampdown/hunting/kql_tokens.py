"""Just enough KQL lexing to find names and top-level operators by line and column.

The translator (duckdb-kql) parses the whole language; this lexer only splits the text into
names, strings, numbers and punctuation, skipping comments and string contents, so that a
`render` clause can be read and a name DuckDB complains about can be pointed at in the query.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass


class Kind(enum.Enum):
    NAME = "name"
    STRING = "string"
    NUMBER = "number"
    PUNCT = "punct"


@dataclass(frozen=True)
class Token:
    """One token: its kind, its text (a string's value without quotes), where it starts (1-based
    line and column), its offset in the query, and how deep in brackets it is."""

    kind: Kind
    text: str
    line: int
    column: int
    offset: int
    depth: int


def _string_end(query: str, i: int) -> tuple[int, str]:
    """The offset after the string literal starting at `i`, and its value."""
    n = len(query)
    if query.startswith("```", i):
        end = query.find("```", i + 3)
        end = n if end < 0 else end
        return min(n, end + 3), query[i + 3 : end]
    verbatim = query[i] == "@"
    if verbatim:
        i += 1
    quote, j, value = query[i], i + 1, []
    while j < n:
        c = query[j]
        if c == quote:
            if verbatim and query[j + 1 : j + 2] == quote:  # a doubled quote inside a verbatim string
                value.append(quote)
                j += 2
                continue
            return j + 1, "".join(value)
        if c == "\\" and not verbatim and j + 1 < n:
            value.append(query[j + 1])
            j += 2
            continue
        if c == "\n":
            break  # a plain string ends at the line's end
        value.append(c)
        j += 1
    return j, "".join(value)


def tokens(query: str) -> Iterator[Token]:
    """The query's tokens, in order; comments and whitespace are skipped."""
    i, n, depth = 0, len(query), 0
    line, line_start = 1, 0

    def where(offset: int) -> tuple[int, int]:
        return line, offset - line_start + 1

    while i < n:
        c = query[i]
        if c == "\n":
            line, line_start, i = line + 1, i + 1, i + 1
            continue
        if c.isspace():
            i += 1
            continue
        if query.startswith("//", i):
            end = query.find("\n", i)
            i = n if end < 0 else end
            continue
        start = i
        if c in "'\"" or query.startswith("```", i) or (c == "@" and query[i + 1 : i + 2] in ("'", '"')):
            i, value = _string_end(query, i)
            ln, col = where(start)
            yield Token(Kind.STRING, value, ln, col, start, depth)
            # A multi-line string moves the line count on.
            newlines = query.count("\n", start, i)
            if newlines:
                line, line_start = line + newlines, query.rfind("\n", start, i) + 1
            continue
        if c.isalpha() or c == "_":
            while i < n and (query[i].isalnum() or query[i] == "_"):
                i += 1
            ln, col = where(start)
            yield Token(Kind.NAME, query[start:i], ln, col, start, depth)
            continue
        if c.isdigit():
            while i < n and (query[i].isalnum() or query[i] == "."):
                i += 1
            ln, col = where(start)
            yield Token(Kind.NUMBER, query[start:i], ln, col, start, depth)
            continue
        if c in ")]}":
            depth = max(0, depth - 1)
        ln, col = where(start)
        yield Token(Kind.PUNCT, c, ln, col, start, depth)
        if c in "([{":
            depth += 1
        i += 1


def locate_name(query: str, name: str) -> tuple[int, int] | None:
    """Line and column of the first place the query names `name` (outside strings and comments)."""
    wanted = name.lower()
    for token in tokens(query):
        if token.kind is Kind.NAME and token.text.lower() == wanted:
            return token.line, token.column
    return None
