"""What the CLI shows a person (cli/render.py): one-line summaries and the rich tables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rich.console import Console
from rich.table import Table

from clampdown.catalog import get_action
from clampdown.cli.render import actions_table, catalog_table, rows_table, summary
from clampdown.model import ActionStatus
from tests.sample_actions import REQUESTED_AT, sample_action

DONE = sample_action(status=ActionStatus.COMPLETED, result={"changed": True, "message": "user suspended"})
FAILED = sample_action(
    id=8, account=None, status=ActionStatus.FAILED, error_message="the directory refused: 403",
    requested_at=REQUESTED_AT + timedelta(seconds=61),
)  # fmt: skip


def _text(table: Table) -> list[str]:
    """The table as printed, one string per line, trailing space removed."""
    console = Console(record=True, width=200)
    console.print(table)
    return [line.rstrip() for line in console.export_text().splitlines()]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("│┃").split("│" if "│" in line else "┃")]


def test_summary_says_what_happened_to_whom() -> None:
    assert summary(DONE) == "action 7: okta.suspend_user on ivan@example.test: completed: user suspended"
    assert summary(FAILED) == "action 8: okta.suspend_user on ivan: failed: the directory refused: 403"
    assert summary(sample_action()) == "action 7: okta.suspend_user on ivan@example.test: queued"


def test_actions_table_has_one_row_per_action_with_its_outcome() -> None:
    lines = _text(actions_table([DONE, FAILED]))
    header = _cells(next(line for line in lines if "requested by" in line))
    assert header == ["id", "type", "target", "status", "requested by", "requested at", "outcome"]
    rows = [_cells(line) for line in lines if line.startswith("│")]
    assert rows == [
        ["7", "okta.suspend_user", "ivan@example.test", "completed", "alice", "2026-11-29 10:00:00",
         "user suspended"],
        ["8", "okta.suspend_user", "ivan", "failed", "alice", "2026-11-29 10:01:01",
         "the directory refused: 403"],
    ]  # fmt: skip


def test_catalog_table_shows_the_inverse_and_who_may_run_it() -> None:
    definitions = [get_action(i) for i in ("okta.suspend_user", "entra.revoke_sessions")]
    rows = [_cells(line) for line in _text(catalog_table(definitions)) if line.startswith("│")]
    who = [", ".join(sorted(d.roles | d.permissions)) for d in definitions]
    assert all(who)  # every action names who may run it
    assert rows == [
        ["okta.suspend_user", definitions[0].title, "okta.unsuspend_user", who[0]],
        ["entra.revoke_sessions", definitions[1].title, "irreversible", who[1]],
    ]


def test_rows_table_keeps_the_first_rows_column_order_and_blanks_none() -> None:
    rows: list[dict[str, object]] = [
        {"upn": "ivan@example.test", "count": 3, "last": None},
        {"upn": "judy", "count": 0, "last": "x"},
    ]
    lines = _text(rows_table(rows))
    assert _cells(lines[1]) == ["upn", "count", "last"]
    assert [_cells(line) for line in lines if line.startswith("│")] == [
        ["ivan@example.test", "3", ""],
        ["judy", "0", "x"],
    ]


def test_rows_table_of_no_rows_is_empty() -> None:
    assert rows_table([]).columns == []


@pytest.mark.xfail(strict=True, reason="cells are read as rich markup: '[bold]' vanishes, '[/x]' raises")
@pytest.mark.parametrize("value", ["[bold]ivan", "evil[/x]"])
def test_cells_are_shown_as_given_not_as_markup(value: str) -> None:
    lines = _text(rows_table([{"AccountUpn": value}]))
    assert _cells(lines[3]) == [value]


@pytest.mark.xfail(strict=True, reason="each row's values are laid out in its own key order")
def test_rows_table_puts_each_value_under_its_column() -> None:
    lines = _text(rows_table([{"a": "1", "b": "2"}, {"b": "3", "a": "4"}]))
    assert [_cells(line) for line in lines if line.startswith("│")] == [["1", "2"], ["4", "3"]]


def test_csv_cells_a_spreadsheet_would_evaluate_get_a_quote(capsys: pytest.CaptureFixture[str]) -> None:
    """--output csv writes its cells as the API's export does (views.base.spreadsheet_safe): a
    target or reason from attacker-written event data never runs as a formula."""
    import csv
    import io

    from clampdown.cli.render import Output, emit

    rows = [{"id": 1, "target": "=HYPERLINK(\"http://evil\")", "reason": "-2+3", "nested": {"a": 1},
             "none": None, "plain": "alice"}]  # fmt: skip
    emit(rows, Output.CSV, lambda: Table())
    (written,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert written == {"id": "1", "target": "'=HYPERLINK(\"http://evil\")", "reason": "'-2+3",
                       "nested": '{"a": 1}', "none": "", "plain": "alice"}  # fmt: skip
