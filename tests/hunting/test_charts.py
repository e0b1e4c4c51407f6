"""KQL `render`: the clause read with the position of every mistake, the axes chosen from the
result's columns, and both through a real `clampdown serve`; KQL errors point into the KQL text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from clampdown.hunting.charts import ChartKind, ChartMode, RenderError, parse_render
from clampdown.hunting.query import QueryError, run_query
from clampdown.hunting.store import Batch, EventStore
from clampdown.permissions import SECURITY_READER
from tests.api.conftest import Server
from tests.hunting.test_api_and_cli import _ingest, _post

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BY_HOUR = "CloudSignInEvents\n| summarize SignIns = count() by bin(Timestamp, 1h), ActionType\n"


@pytest.fixture
def sign_ins(event_store: EventStore) -> EventStore:
    """Three hours of Okta sign-ins: failures 3, 2, 1 and successes 1, 1, 1."""
    rows = []
    for hour, failures in enumerate((3, 2, 1)):
        for n in range(failures + 1):
            rows.append({
                "Timestamp": START + timedelta(hours=hour, minutes=n),
                "Provider": "okta",
                "ActionType": "LogonFailed" if n < failures else "LogonSuccess",
                "AccountUpn": f"user{n}@lab.example.test",
                "Source": "okta",
                "ReportId": f"r-{hour}-{n}",
            })  # fmt: skip
    event_store.append(Batch(rows={"CloudSignInEvents": rows}, positions={}))
    return event_store


def test_a_render_clause_is_read_with_its_properties() -> None:
    spec = parse_render(
        BY_HOUR + '| render timechart with (title = "Sign-ins", ycolumns = SignIns, series = ActionType,'
        " kind = stacked, legend = hidden)"
    )
    assert spec is not None
    assert (spec.kind, spec.title, spec.mode, spec.legend) == (
        ChartKind.TIMECHART,
        "Sign-ins",
        ChartMode.STACKED,
        False,
    )
    assert [(c.name, c.line, c.column) for c in spec.ycolumns] == [("SignIns", 3, 57)]
    assert [c.name for c in spec.series] == ["ActionType"]
    assert (spec.line, spec.column) == (3, 3)
    several = parse_render("T | render columnchart with (ycolumns = A, B, xcolumn = C)")
    assert several is not None and [c.name for c in several.ycolumns] == ["A", "B"]
    assert several.xcolumn is not None and several.xcolumn.name == "C"
    # Not a clause: in a string, a comment, or inside brackets (a subquery's render is the translator's).
    assert parse_render('T | where Note == "| render piechart" // | render timechart') is None
    assert parse_render("T | join (U | render piechart) on Id") is None


@pytest.mark.parametrize(
    ("query", "message", "line", "column"),
    [
        ("T | render", "render needs a chart kind", 1, 5),
        ("T\n| render scatterchart", "render scatterchart is not supported here; use timechart", 2, 10),
        ("T | render timechart | take 5", "render must be the query's last operator", 1, 5),
        ("T | render timechart; T", "render must be the query's last operator", 1, 5),
        ("T | render piechart title", "only `with (property = value, ...)` may come", 1, 21),
        ("T | render piechart with title", "with needs its properties in brackets", 1, 26),
        ("T | render piechart with (colour = 1)", "unknown render property 'colour'", 1, 27),
        ("T | render piechart with (title = Failures)", "title takes a string", 1, 35),
        ("T | render piechart with (kind = sideways)", "kind takes one of default, unstacked", 1, 34),
        ("T | render piechart with (legend = yes)", "legend takes visible or hidden", 1, 36),
        (
            "T | render piechart with (title = 'a', title = 'b')",
            "the render property title is given twice",
            1,
            40,
        ),
        ("T | render piechart with (ycolumns = 'A')", "ycolumns takes column names", 1, 38),
        ("T | render piechart with (title = 'a'", "the render properties' bracket is not closed", 1, 26),
        ("T | render piechart with (title = 'a') x", "nothing may follow the render properties", 1, 40),
    ],
)
def test_a_wrong_render_clause_is_refused_where_it_is_wrong(
    query: str, message: str, line: int, column: int
) -> None:
    with pytest.raises(RenderError) as caught:
        parse_render(query)
    assert message in caught.value.message
    assert (caught.value.line, caught.value.column) == (line, column)


def test_a_timechart_takes_the_datetime_axis_and_splits_series_by_text(sign_ins: EventStore) -> None:
    result = run_query(sign_ins, BY_HOUR + "| order by Timestamp asc\n| render timechart")
    assert result.chart is not None
    assert (result.chart.kind, result.chart.x, result.chart.y, result.chart.series) == (
        ChartKind.TIMECHART, "Timestamp", ["SignIns"], ["ActionType"]
    )  # fmt: skip
    assert result.column_types == ["TIMESTAMP", "VARCHAR", "BIGINT"]  # bin() gives UTC wall time
    failed = [r[2] for r in result.rows if r[1] == "LogonFailed"]
    assert failed == [3, 2, 1]


def test_column_bar_and_pie_charts_choose_their_axes(sign_ins: EventStore) -> None:
    per_account = (
        "CloudSignInEvents | summarize Failures = countif(ActionType == 'LogonFailed'), All = count()"
        " by AccountUpn"
    )
    column = run_query(sign_ins, per_account + " | render columnchart").chart
    assert column is not None and (column.x, column.y, column.series) == (
        "AccountUpn",
        ["Failures", "All"],
        [],
    )
    bar = run_query(
        sign_ins, per_account + " | render barchart with (ycolumns = All, title = 'Sign-ins')"
    ).chart
    assert bar is not None and (bar.kind, bar.y, bar.title) == (ChartKind.BARCHART, ["All"], "Sign-ins")
    pie = run_query(
        sign_ins, "CloudSignInEvents | summarize n = count() by ActionType | render piechart"
    ).chart
    assert pie is not None and (pie.x, pie.y, pie.series) == ("ActionType", ["n"], [])
    assert run_query(sign_ins, "CloudSignInEvents | take 1").chart is None


@pytest.mark.parametrize(
    ("query", "message", "line", "column"),
    [
        (
            "CloudSignInEvents | summarize n = count() by ActionType | render timechart",
            "render timechart: needs a datetime column for its x axis",
            1, 59,
        ),
        (
            "CloudSignInEvents | summarize n = count() by ActionType\n"
            "| render piechart with (ycolumns = Total)",
            "ycolumns: no column 'Total' in the results; columns: ActionType, n",
            2, 36,
        ),
        (
            "CloudSignInEvents | project ActionType, AccountUpn | render columnchart",
            "needs a numeric column to draw",
            1, 54,
        ),
        (
            "CloudSignInEvents | summarize n = count() by ActionType\n"
            "| render columnchart with (ycolumns = ActionType)",
            "ycolumns: ActionType is VARCHAR, not a number",
            2, 39,
        ),
        (
            "CloudSignInEvents | summarize n = count() by ActionType, Timestamp\n"
            "| render timechart with (xcolumn = ActionType)",
            "a timechart's x axis must be a datetime; ActionType is VARCHAR",
            2, 36,
        ),
    ],
)  # fmt: skip
def test_a_chart_the_result_cannot_fill_is_an_error_at_the_render_clause(
    sign_ins: EventStore, query: str, message: str, line: int, column: int
) -> None:
    with pytest.raises(QueryError) as caught:
        run_query(sign_ins, query)
    assert message in str(caught.value)
    assert (caught.value.line, caught.value.column) == (line, column)


@pytest.mark.parametrize(
    ("query", "line", "column"),
    [
        ("CloudSignInEvents\n| where Nope == 1", 2, 9),  # DuckDB's binder names the column
        ("CloudSignInEvents\n| summarize count() by  Nope", 2, 25),
        ("NoSuchTable\n| take 1", 1, 1),  # DuckDB's catalog names the table
        ("CloudSignInEvents\n| join kind=inner (Elsewhere) on AccountUpn", 2, 20),  # the translator's schema
        ("CloudSignInEvents\n| where x == ", 2, 13),  # the translator's parser
    ],
)
def test_kql_errors_point_into_the_kql_text(sign_ins: EventStore, query: str, line: int, column: int) -> None:
    with pytest.raises(QueryError) as caught:
        run_query(sign_ins, query)
    assert (caught.value.line, caught.value.column) == (line, column), str(caught.value)
    assert "expecting {" not in str(caught.value)  # not the parser's list of a hundred tokens


def test_a_scoped_kql_query_is_refused_at_the_table_it_may_not_read(sign_ins: EventStore) -> None:
    with pytest.raises(QueryError) as caught:
        run_query(
            sign_ins,
            "let n = 1;\nCloudSignInEvents | take 1\n| where n == toscalar(Elsewhere | count)",
            sources=frozenset({"okta"}),
        )
    assert "'Elsewhere' is not one" in str(caught.value)
    assert (caught.value.line, caught.value.column) == (3, 23)


async def test_the_api_returns_the_chart_and_the_errors_position(server: Server, day_evtx: Path) -> None:
    reader = await server.token("watcher", SECURITY_READER)
    _ingest(server, await server.token("hunter", "Global Administrator"), day_evtx)
    answer = _post(
        server, reader, "/query",
        {"query": "IdentityLogonEvents\n| summarize Logons = count() by bin(Timestamp, 1h), ActionType"
                  '\n| render timechart with (title = "Logons by hour")'},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["chart"] == {
        "kind": "timechart", "x": "Timestamp", "y": ["Logons"], "series": ["ActionType"],
        "title": "Logons by hour", "xtitle": None, "ytitle": None, "mode": "default", "legend": True,
    }  # fmt: skip
    assert body["column_types"] == ["TIMESTAMP", "VARCHAR", "BIGINT"]
    assert {r[1] for r in body["rows"]} == {"LogonSuccess", "LogonFailed"}
    sql = _post(server, reader, "/query", {"query": "SELECT 1 AS one", "language": "sql"})
    assert sql.json()["chart"] is None

    wrong = _post(server, reader, "/query", {"query": "IdentityLogonEvents\n| render radarchart"})
    assert wrong.status_code == 422
    error = wrong.json()["error"]
    assert (error["code"], error["line"], error["column"]) == ("invalid_query", 2, 10)
    assert "render radarchart is not supported here" in error["message"]
    missing = _post(server, reader, "/query", {"query": "SELECT *\nFROM IdentityLogonEvents\nWHERE Nope = 1"})
    assert (missing.json()["error"]["line"], missing.json()["error"]["column"]) == (3, 7)

    # The editor's check as one types: the mistake and where, nothing run.
    checked = _post(server, reader, "/check", {"query": "IdentityLogonEvents\n| summarize n = count() by"})
    assert checked.status_code == 200, checked.text
    assert checked.json()["valid"] is False and checked.json()["language"] == "kql"
    assert (checked.json()["line"], checked.json()["column"]) == (2, 27)
    assert "KQL syntax error" in checked.json()["message"]
    sql_check = _post(server, reader, "/check", {"query": "SELECT *\nFRM IdentityLogonEvents"})
    assert (sql_check.json()["valid"], sql_check.json()["line"], sql_check.json()["column"]) == (
        False,
        2,
        5,
    )  # DuckDB: FRM is an alias, the table name is the mistake
    fine = _post(server, reader, "/check", {"query": "IdentityLogonEvents | render piechart"})
    assert fine.json() == {"language": "kql", "valid": True, "message": None, "line": None, "column": None}

    schema = httpx.get(
        f"{server.base}/api/v1/hunting/schema", headers={"Authorization": f"Bearer {reader}"}, timeout=30
    )
    assert schema.status_code == 200
    logons = next(t for t in schema.json() if t["name"] == "IdentityLogonEvents")
    assert "Protocol" in [c["name"] for c in logons["columns"]]
