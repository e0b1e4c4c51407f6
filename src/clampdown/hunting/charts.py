"""KQL `render`: read from the query's last operator, then fitted to the result's columns.

`T | summarize count() by bin(Timestamp, 1h), ActionType | render timechart` asks for a chart of
the result; the translator leaves the rows untouched (render is a display hint). Here the clause
is parsed (`parse_render`, with the line and column of every mistake) and, once the query has
run, its axes are chosen the way Kusto chooses them (`resolve_chart`): a timechart's x axis is
its first datetime column, a column, bar or pie chart's its first column (a pie's first text
column); the y axes are the numeric columns; the remaining text columns split the series.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from clampdown.hunting.kql_tokens import Kind, Token, tokens


class ChartKind(enum.StrEnum):
    TIMECHART = "timechart"
    COLUMNCHART = "columnchart"
    BARCHART = "barchart"
    PIECHART = "piechart"


class ChartMode(enum.StrEnum):
    """How several series share the chart (Kusto's `kind` property)."""

    DEFAULT = "default"
    UNSTACKED = "unstacked"
    STACKED = "stacked"
    STACKED100 = "stacked100"


KINDS = ", ".join(k.value for k in ChartKind)
_TEXT_PROPERTIES = ("title", "xtitle", "ytitle")
_NAME_PROPERTIES = ("xcolumn", "ycolumns", "series")
_PROPERTIES = (*_TEXT_PROPERTIES, *_NAME_PROPERTIES, "kind", "legend")


class RenderError(Exception):
    """The render clause is wrong; `line` and `column` point at the part at fault (1-based)."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


@dataclass(frozen=True)
class NamedColumn:
    """A column named in the render clause, with where it is named (for errors after the run)."""

    name: str
    line: int
    column: int


@dataclass(frozen=True)
class RenderSpec:
    """What the render clause asks for; columns not named are chosen from the result."""

    kind: ChartKind
    line: int
    column: int
    title: str | None = None
    xtitle: str | None = None
    ytitle: str | None = None
    xcolumn: NamedColumn | None = None
    ycolumns: tuple[NamedColumn, ...] = ()
    series: tuple[NamedColumn, ...] = ()
    mode: ChartMode = ChartMode.DEFAULT
    legend: bool = True


@dataclass(frozen=True)
class Chart:
    """The chart to draw: its kind, x column, y columns and the columns whose values split series."""

    kind: ChartKind
    x: str
    y: list[str]
    series: list[str]
    title: str | None = None
    xtitle: str | None = None
    ytitle: str | None = None
    mode: ChartMode = ChartMode.DEFAULT
    legend: bool = True


def _error(message: str, token: Token | None) -> RenderError:
    return RenderError(message, token.line if token else None, token.column if token else None)


def parse_render(query: str) -> RenderSpec | None:
    """The query's render clause, or None without one. RenderError (with the position) when it is
    not the last operator, names an unsupported chart kind or has a wrong property."""
    toks = list(tokens(query))
    found: int | None = None
    for i, tok in enumerate(toks):
        if tok.depth == 0 and tok.kind is Kind.PUNCT and tok.text == "|":
            nxt = toks[i + 1] if i + 1 < len(toks) else None
            if found is not None:
                raise _error("render must be the query's last operator", toks[found])
            if nxt is not None and nxt.kind is Kind.NAME and nxt.text == "render":
                found = i + 1
        elif found is not None and tok.depth == 0 and tok.kind is Kind.PUNCT and tok.text == ";":
            raise _error("render must be the query's last operator", toks[found])
    if found is None:
        return None
    return _parse_clause(toks[found:])


def _parse_clause(toks: list[Token]) -> RenderSpec:
    render = toks[0]
    rest = toks[1:]
    if not rest or rest[0].kind is not Kind.NAME:
        raise _error(f"render needs a chart kind: {KINDS}", rest[0] if rest else render)
    kind_token = rest[0]
    try:
        kind = ChartKind(kind_token.text)
    except ValueError:
        raise _error(f"render {kind_token.text} is not supported here; use {KINDS}", kind_token) from None
    spec: dict[str, object] = {}
    rest = rest[1:]
    if rest:
        if not (rest[0].kind is Kind.NAME and rest[0].text == "with"):
            raise _error(f"after render {kind.value} only `with (property = value, ...)` may come", rest[0])
        spec = _properties(rest[1:], rest[0])
    return RenderSpec(kind, render.line, render.column, **spec)  # type: ignore[arg-type]


def _properties(toks: list[Token], with_token: Token) -> dict[str, object]:
    """The `(name = value, ...)` list after `with`, up to its closing bracket (the clause's end)."""
    if not toks or toks[0].text != "(":
        raise _error(
            'with needs its properties in brackets: with (title = "...")', toks[0] if toks else with_token
        )
    found: dict[str, object] = {}
    i = 1

    def at(k: int) -> Token | None:
        return toks[k] if k < len(toks) else None

    while True:
        tok = at(i)
        if tok is None:
            raise _error("the render properties' bracket is not closed", toks[0])
        if tok.text == ")" and tok.kind is Kind.PUNCT:
            if at(i + 1) is not None:
                raise _error("nothing may follow the render properties", at(i + 1))
            return found
        if tok.kind is not Kind.NAME:
            raise _error(f"expected a render property ({', '.join(_PROPERTIES)})", tok)
        name = tok.text
        if name not in _PROPERTIES:
            raise _error(f"unknown render property {name!r}; known: {', '.join(_PROPERTIES)}", tok)
        if name in found or (name == "kind" and "mode" in found):
            raise _error(f"the render property {name} is given twice", tok)
        eq = at(i + 1)
        if eq is None or eq.text != "=":
            raise _error(f"expected = after {name}", eq or tok)
        value = at(i + 2)
        if value is None:
            raise _error(f"{name} needs a value", eq)
        i += 3
        if name in _TEXT_PROPERTIES:
            if value.kind is not Kind.STRING:
                raise _error(f'{name} takes a string, e.g. {name} = "Failed sign-ins"', value)
            found[name] = value.text
        elif name == "kind":
            try:
                found["mode"] = ChartMode(value.text)
            except ValueError:
                modes = ", ".join(m.value for m in ChartMode)
                raise _error(f"kind takes one of {modes}", value) from None
        elif name == "legend":
            if value.text not in ("visible", "hidden"):
                raise _error("legend takes visible or hidden", value)
            found["legend"] = value.text == "visible"
        else:
            names = [value]
            # A list: more names after commas, up to the next `property =`.
            while (
                name != "xcolumn"
                and (comma := at(i)) is not None and comma.text == ","
                and (nxt := at(i + 1)) is not None and nxt.kind is Kind.NAME
                and not ((after := at(i + 2)) is not None and after.text == "=")
            ):  # fmt: skip
                names.append(nxt)
                i += 2
            for n in names:
                if n.kind is not Kind.NAME:
                    raise _error(f"{name} takes column names", n)
            columns = tuple(NamedColumn(n.text, n.line, n.column) for n in names)
            found[name] = columns[0] if name == "xcolumn" else columns
        sep = at(i)
        if sep is not None and sep.text == ",":
            i += 1


_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL")  # fmt: skip


def is_numeric(type_name: str) -> bool:
    return type_name.upper().split("(")[0].strip() in _NUMERIC


def is_time(type_name: str) -> bool:
    return type_name.upper().startswith(("TIMESTAMP", "DATE"))


def is_text(type_name: str) -> bool:
    return type_name.upper() in ("VARCHAR", "BOOLEAN", "UUID", "JSON")


def resolve_chart(spec: RenderSpec, columns: list[str], types: list[str]) -> Chart:
    """The chart's axes from the result's columns; RenderError (pointing into the render clause)
    when a named column is missing or of the wrong type, or no column fits an axis."""
    type_of = dict(zip(columns, types, strict=True))
    listed = ", ".join(columns) or "none"

    def named(col: NamedColumn, what: str) -> str:
        if col.name not in type_of:
            raise RenderError(f"{what}: no column {col.name!r} in the results; columns: {listed}", col.line,
                              col.column)  # fmt: skip
        return col.name

    def fail(message: str) -> RenderError:
        return RenderError(f"render {spec.kind.value}: {message}; the result's columns: {listed}", spec.line,
                           spec.column)  # fmt: skip

    if spec.xcolumn is not None:
        x = named(spec.xcolumn, "xcolumn")
    elif spec.kind is ChartKind.TIMECHART:
        x = next((c for c in columns if is_time(type_of[c])), "")
        if not x:
            raise fail("needs a datetime column for its x axis, e.g. summarize ... by bin(Timestamp, 1h)")
    elif spec.kind is ChartKind.PIECHART:
        x = next((c for c in columns if not is_numeric(type_of[c])), columns[0] if columns else "")
    else:
        x = columns[0] if columns else ""
    if not x:
        raise fail("has no column to draw")
    if spec.kind is ChartKind.TIMECHART and not is_time(type_of[x]):
        col = spec.xcolumn
        raise RenderError(f"xcolumn: a timechart's x axis must be a datetime; {x} is {type_of[x]}",
                          col.line if col else spec.line, col.column if col else spec.column)  # fmt: skip
    series = [named(c, "series") for c in spec.series]
    if spec.ycolumns:
        y = [named(c, "ycolumns") for c in spec.ycolumns]
        for col in spec.ycolumns:
            if not is_numeric(type_of[col.name]):
                raise RenderError(f"ycolumns: {col.name} is {type_of[col.name]}, not a number", col.line,
                                  col.column)  # fmt: skip
    else:
        y = [c for c in columns if c != x and c not in series and is_numeric(type_of[c])]
    if not y:
        raise fail("needs a numeric column to draw, e.g. summarize Count = count() by ...")
    if spec.kind is ChartKind.PIECHART:
        y, series = y[:1], []
    elif not spec.series:
        series = [c for c in columns if c != x and c not in y and is_text(type_of[c])]
    return Chart(spec.kind, x, y, series, spec.title, spec.xtitle, spec.ytitle, spec.mode, spec.legend)


def spec_to_json(spec: RenderSpec) -> dict[str, object]:
    """The spec as JSON-safe values (the translator child sends it to the server this way)."""
    return dataclasses.asdict(spec)


def spec_from_json(data: dict[str, Any]) -> RenderSpec:
    """The inverse of spec_to_json."""

    def col(c: dict[str, Any]) -> NamedColumn:
        return NamedColumn(str(c["name"]), int(c["line"]), int(c["column"]))

    return RenderSpec(
        ChartKind(data["kind"]), int(data["line"]), int(data["column"]),
        data.get("title"), data.get("xtitle"), data.get("ytitle"),
        col(data["xcolumn"]) if data.get("xcolumn") else None,
        tuple(col(c) for c in data.get("ycolumns") or ()),
        tuple(col(c) for c in data.get("series") or ()),
        ChartMode(data.get("mode") or ChartMode.DEFAULT), bool(data.get("legend", True)),
    )  # fmt: skip
