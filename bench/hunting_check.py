"""The hunting editor's check as one types (POST /api/v1/hunting/check, issue 19): how long
`check_query` takes for a KQL query not seen before (translated in a child process, with its render
clause), for one seen before (the translation cache), and for SQL (DuckDB's parser). Each text of
the uncached runs differs in a literal, so none is a cache hit; the children are warm (as they are in
a running server). Median and p95 of --repeat runs each; one JSON row per case into --results.

    flock -x /tmp/clampdown-bench.lock .venv/bin/python bench/hunting_check.py --repeat 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from clampdown.hunting.query import Language, check_query

KQL = """CloudSignInEvents
| where ActionType == "LogonFailed" and IPAddress != "{n}"
| summarize Failures = count() by bin(Timestamp, 1h), Provider
| render timechart with (title = "Failed sign-ins")"""
SQL = """SELECT date_trunc('hour', Timestamp) AS Hour, count(*) AS Failures FROM CloudSignInEvents
WHERE ActionType = 'LogonFailed' AND IPAddress <> '{n}' GROUP BY 1 ORDER BY 1"""


def timed(repeat: int, run: Callable[[int], object]) -> dict[str, float]:
    spent = []
    for n in range(repeat):
        started = time.perf_counter()
        run(n)
        spent.append((time.perf_counter() - started) * 1000)
    spent.sort()
    return {
        "median_ms": round(statistics.median(spent), 3),
        "p95_ms": round(spent[int(0.95 * (len(spent) - 1))], 3),
        "runs": repeat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    results = Path(__file__).parent / "results" / "hunting_check.jsonl"
    parser.add_argument("--results", type=Path, default=results)
    args = parser.parse_args()
    check_query(KQL.format(n="warm"))  # a first child process, as a running server has
    cases: dict[str, Callable[[int], object]] = {
        "kql_new_text": lambda n: check_query(KQL.format(n=f"new-{n}")),
        "kql_seen_text": lambda n: check_query(KQL.format(n="warm")),
        "sql_new_text": lambda n: check_query(SQL.format(n=f"new-{n}"), Language.SQL),
    }
    with args.results.open("a", encoding="utf-8") as out:
        for name, run in cases.items():
            row = {"bench": "hunting_check", "case": name, **timed(args.repeat, run)}
            print(json.dumps(row))
            out.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
