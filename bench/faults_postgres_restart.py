"""PostgreSQL restarted under a 2,000-action bulk worked by 4 `clampdown worker` processes.

A private cluster (tests/faults/private_postgres.py: pg_createcluster on a free port, dropped at
the end; needs root, as in CI) so the machine's shared cluster is never touched. Each run is a new
database: the bulk of okta.suspend_user on the memory directory (0.2 s per call), and once 500 have
completed, one of:

- `baseline`: nothing happens;
- `fast`: `pg_ctlcluster restart -m fast` (every session terminated, started again at once);
- `immediate-8s`: `pg_ctlcluster stop -m immediate` (no checkpoint: crash recovery at start),
  8 s away, then `start`.

Each run prints one JSON line, also appended to bench/results/faults_postgres_restart.jsonl:
the bulk's time from request to last completion, the restart command's time, the time from the
restart command and from the server being back to the first action completing, and what was lost,
changed twice or run twice (all 0 expected), then one line of medians per mode.

    .venv/bin/python bench/faults_postgres_restart.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.faults.bulk_under_restart import BulkRun, run_bulk
from tests.faults.private_postgres import PrivateCluster, unavailable_reason

RESULTS = Path(__file__).resolve().parent / "results" / "faults_postgres_restart.jsonl"
MODES: dict[str, tuple[str | None, float]] = {
    "baseline": (None, 0.0),
    "fast": ("fast", 0.0),
    "immediate-8s": ("immediate", 8.0),
}
TIMINGS = ("bulk_seconds", "restart_seconds", "first_completion_after_restart_seconds", "recovery_seconds")


def _row(mode: str, run: BulkRun, workers: int, label: str) -> dict[str, Any]:
    restart = run.restart
    return {
        "benchmark": "faults_postgres_restart",
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "label": label,
        "mode": mode,
        "actions": run.actions,
        "workers": workers,
        "completed_before_restart": restart.completed_before if restart else None,
        "bulk_seconds": round(run.bulk_seconds, 2),
        "restart_seconds": round(restart.back_at - restart.issued_at, 2) if restart else None,
        "first_completion_after_restart_seconds": _round(run.first_completion_after_restart),
        "recovery_seconds": _round(run.recovery_seconds),
        "lost": run.actions - run.statuses["completed"],
        "changed_twice": sum(1 for n in run.changes_per_account.values() if n > 1),
        "run_twice": sum(1 for n in run.calls_per_action.values() if n > 1),
        "workers_alive": sum(run.alive_at_end),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actions", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--label", default="", help="a name for the code measured, kept in each row")
    args = parser.parse_args()
    if (reason := unavailable_reason()) is not None:
        sys.exit(f"cannot make a private PostgreSQL cluster: {reason}")
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
    cluster = PrivateCluster.create()
    try:
        for _ in range(args.repeat):
            for mode in args.modes:  # interleaved, so a change in the machine's load hits every mode
                restart_mode, down = MODES[mode]
                with tempfile.TemporaryDirectory() as tmp:
                    run = run_bulk(
                        cluster, Path(tmp), restart_mode=restart_mode, down_seconds=down,
                        actions=args.actions, workers=args.workers,
                    )  # fmt: skip
                row = _row(mode, run, args.workers, args.label)
                rows[mode].append(row)
                print(json.dumps(row), flush=True)
                with RESULTS.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    finally:
        cluster.drop()
    for mode, found in rows.items():
        medians = {
            key: round(statistics.median(r[key] for r in found), 2)
            for key in TIMINGS
            if all(r[key] is not None for r in found)
        }
        print(json.dumps({"mode": mode, "runs": len(found), "median": medians}), flush=True)


if __name__ == "__main__":
    main()
