"""KQL translation in a child process, killed at a time limit.

duckdb-kql parses in pure Python: a hostile query can hold a core (and the server's GIL) for a
minute. In a child process it holds neither the event loop nor anything else, and the parent kills
the child once the limit passes. Children are kept and reused; each answers one JSON line per
query on stdout. `python -m clampdown.hunting.kql_worker` is the child.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clampdown.hunting.charts import RenderError, RenderSpec, parse_render, spec_from_json, spec_to_json
from clampdown.hunting.kql_tokens import locate_name

MAX_IDLE_WORKERS = 4


class TranslationTimedOut(Exception):
    """The child did not answer in time and was killed."""


class TranslationFailed(Exception):
    """The child died or answered something that is not a reply."""


@dataclass(frozen=True)
class Translation:
    """The SQL (and the render clause's chart, if any), or the error: a message with the 1-based
    line and column when known."""

    sql: str | None
    error: str | None = None
    line: int | None = None
    column: int | None = None
    render: RenderSpec | None = None


def translate_here(query: str) -> Translation:
    """Translate in this process (what the child runs)."""
    import duckdb_kql

    from clampdown.hunting.schema import EVENT_TABLES

    schema = {t.name: t.column_names for t in EVENT_TABLES}
    try:
        # First: the translator's own messages for a render clause are a parser's, not a person's.
        render = parse_render(query)
    except RenderError as exc:
        return Translation(None, f"KQL render: {exc.message}", exc.line, exc.column)
    except RecursionError:
        return Translation(None, "the query is nested too deeply to translate")
    try:
        sql = str(duckdb_kql.to_sql(query, schema=schema, allow_write=False))
    except duckdb_kql.KqlSyntaxError as exc:
        first = exc.diagnostics[0] if exc.diagnostics else None
        if first is None:
            return Translation(None, f"KQL syntax error: {exc}")
        return Translation(
            None, f"KQL syntax error: {_short(first.message)}", first.span.line, first.span.column + 1
        )
    except duckdb_kql.KqlUnsupportedError as exc:
        span = exc.span
        return Translation(
            None,
            f"KQL construct not supported here: {exc.construct}" + (f" ({exc.hint})" if exc.hint else ""),
            span.line if span else None,
            span.column + 1 if span else None,
        )
    except duckdb_kql.KqlError as exc:
        # No span: point at the first name the message quotes (an unknown table of a join).
        named = re.search(r"for '([^']+)'", str(exc))
        where = locate_name(query, named.group(1)) if named else None
        return Translation(None, f"KQL error: {exc}", *(where or (None, None)))
    except RecursionError:
        return Translation(None, "the query is nested too deeply to translate")
    return Translation(sql, render=render)


def _short(message: str) -> str:
    """The parser's message without its list of every token it could have taken (a hundred names)."""
    listed = re.search(r" expecting \{([^}]*)\}", message)
    if listed and listed.group(1).count(",") >= 6:
        return message[: listed.start()] + message[listed.end() :]
    return message


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        # The child must import this very package, wherever it was loaded from.
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "clampdown.hunting.kql_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            env=env,
        )

    def ask(self, query: str, timeout: float) -> Translation:
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(json.dumps({"query": query}).encode() + b"\n")
        except (BrokenPipeError, OSError) as exc:
            raise TranslationFailed(f"the KQL translator is gone: {exc}") from None
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        received = bytearray()
        while not received.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TranslationTimedOut
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                raise TranslationTimedOut
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise TranslationFailed("the KQL translator stopped")
            received += chunk
        reply: dict[str, Any] = json.loads(received)
        render = spec_from_json(reply["render"]) if reply.get("render") else None
        line, column = reply.get("line"), reply.get("column")
        return Translation(reply.get("sql"), reply.get("error"), line, column, render)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


class KqlTranslator:
    """Hands each translation to an idle child (starting one if none is idle); a child that runs
    past the limit is killed, one that answers goes back to the idle list."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        atexit.register(self.close)

    def translate(self, query: str, timeout: float) -> Translation:
        """The translation, or TranslationTimedOut after `timeout` seconds (the child is killed)."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None or worker.process.poll() is not None:
            worker = _Worker()
        try:
            answer = worker.ask(query, timeout)
        except BaseException:
            worker.kill()
            raise
        with self._lock:
            if len(self._idle) < MAX_IDLE_WORKERS:
                self._idle.append(worker)
                worker = None
        if worker is not None:
            worker.kill()
        return answer

    def children(self) -> list[int]:
        """Process ids of the idle children (for tests and diagnostics)."""
        with self._lock:
            return [w.process.pid for w in self._idle]

    def close(self) -> None:
        """Stop every idle child."""
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


def serve() -> None:
    """The child: one JSON line in, one JSON line out, until stdin closes."""
    for line in sys.stdin.buffer:
        query = json.loads(line)["query"]
        answer = translate_here(query)
        reply = {
            "sql": answer.sql, "error": answer.error, "line": answer.line, "column": answer.column,
            "render": spec_to_json(answer.render) if answer.render else None,
        }  # fmt: skip
        sys.stdout.buffer.write(json.dumps(reply).encode() + b"\n")
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    serve()
