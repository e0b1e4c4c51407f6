"""API latency while the syslog receiver is down, then accepts and never reads, then is back.

Starts a real `clampdown serve` (SQLite, embedded worker on, the no-op memory connector) with
syslog over TCP to a port where, in turn for --phase-seconds each: nothing listens (`down`), a
listener accepts and never reads (`stuck`), a receiver reads every frame (`back`). A client sends
`POST /api/v1/actions` one after another, paced at --rate per second, and records each latency;
the same run without syslog (`no syslog`) is the baseline. After `back`, the time until every
audit event has reached the receiver is measured, with what was lost or repeated. --rounds runs
of each; the table gives the median of the rounds' p50 and p99 and their ratio to the baseline.

    .venv/bin/python bench/faults_syslog.py --rounds 3 --phase-seconds 8 --rate 40
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import tomli_w

from clampdown.auth.service import AuthService
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.store.auth import AuthStore

NOOP = {"connector": "clampdown.connectors.memory:MemoryConnector", "provider": "okta"}
RESULTS = Path(__file__).parent / "results" / "faults_syslog.jsonl"
PHASES = ("down", "stuck", "back")


class Receiver:
    """Keeps every octet-counted frame (RFC 6587), in threads of its own; closes at the end of a
    stream, as syslog receivers do."""

    def __init__(self, sock: socket.socket) -> None:
        self.frames: list[bytes] = []
        self._lock = threading.Lock()
        sock.listen(128)
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = sock.accept()
                threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        with contextlib.suppress(OSError, ValueError), conn, stream:
            while True:
                length = b""
                while (c := stream.read(1)) != b" ":
                    if not c:
                        return
                    length += c
                frame = stream.read(int(length))
                with self._lock:
                    self.frames.append(frame)

    def unique(self) -> int:
        with self._lock:
            return len(set(self.frames))


class NeverReads:
    """Accepts every connection and never reads from it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        sock.listen(16)
        sock.settimeout(0.1)  # a blocked accept() would keep the port bound after close()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                self.accepted.append(self.sock.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def bound(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def prepare(url: str) -> str:
    engine = create_engine(url)
    await upgrade(engine)
    auth = AuthService(AuthStore(engine))
    await auth.create_user("bench", frozenset({GLOBAL_ADMINISTRATOR}), None)
    token = (await auth.create_token("bench", "bench", None)).token
    await engine.dispose()
    return token


def drive(client: httpx.Client, seconds: float, rate: float, prefix: str) -> list[float]:
    """Requests one after another at `rate` per second for `seconds`; each one's latency in s."""
    latencies: list[float] = []
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        started = time.perf_counter()
        body = {"type": "okta.suspend_user", "target": f"{prefix}-{n}", "reason": "bench"}
        answer = client.post("/api/v1/actions", json=body)
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 202, answer.text
        n += 1
        time.sleep(max(0.0, 1 / rate - latencies[-1]))
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 2),
    }


def one_run(with_syslog: bool, seconds: float, rate: float, workdir: Path) -> dict[str, object]:
    db = workdir / "bench.db"
    token = asyncio.run(prepare(f"sqlite:///{db}"))
    syslog_port, api_port = free_port(), free_port()
    data: dict[str, object] = {
        "database": {"url": f"sqlite:///{db}"},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.05},
        "providers": {"okta": NOOP},
        "hunting": {"scheduled": False},
    }
    if with_syslog:
        data["syslog"] = {"port": syslog_port, "protocol": "tcp"}
    config = workdir / "bench.toml"
    config.write_text(tomli_w.dumps(data))
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clampdown", "serve", "--port", str(api_port)],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{api_port}"
    row: dict[str, object] = {"syslog": with_syslog}
    receiver: Receiver | None = None
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            drive(client, 1.0, rate, "warm")
            for phase in PHASES:
                stuck = NeverReads(bound(syslog_port)) if with_syslog and phase == "stuck" else None
                if with_syslog and phase == "back":
                    receiver = Receiver(bound(syslog_port))
                row[phase] = summary(drive(client, seconds, rate, phase))
                if stuck is not None:
                    stuck.close()
        if receiver is not None:
            back = time.perf_counter()
            expected = 0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with sqlite3.connect(db) as conn:
                    expected = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
                if receiver.unique() >= expected:
                    break
                time.sleep(0.1)
            row["all_delivered_after_s"] = round(time.perf_counter() - back, 2)
            row["events"] = expected
            row["lost"] = max(0, expected - receiver.unique())
            row["repeated"] = len(receiver.frames) - receiver.unique()
    finally:
        proc.terminate()
        proc.wait(15)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--phase-seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()
    runs: dict[bool, list[dict[str, object]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for with_syslog in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                row = one_run(with_syslog, args.phase_seconds, args.rate, Path(tmp))
            runs[with_syslog].append(row)
            RESULTS.parent.mkdir(exist_ok=True)
            with RESULTS.open("a") as out:
                at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                out.write(json.dumps({"at": at, **row}) + "\n")
            print(row, flush=True)

    def median(with_syslog: bool, phase: str, key: str) -> float:
        return statistics.median(float(r[phase][key]) for r in runs[with_syslog])  # type: ignore[index]

    print("| phase | requests | p50 no syslog | p50 syslog | ratio | p99 no syslog | p99 syslog | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for phase in PHASES:
        cells = [phase, f"{median(True, phase, 'requests'):.0f}"]
        for key in ("p50_ms", "p99_ms"):
            base, faulty = median(False, phase, key), median(True, phase, key)
            cells += [f"{base:.1f} ms", f"{faulty:.1f} ms", f"{faulty / base:.2f}"]
        print("| " + " | ".join(cells) + " |")
    faulty = runs[True]
    print(
        "delivered after back (median s):",
        statistics.median(float(r["all_delivered_after_s"]) for r in faulty),  # type: ignore[arg-type]
        "| events:",
        [r["events"] for r in faulty],
        "| lost:",
        [r["lost"] for r in faulty],
        "| repeated:",
        [r["repeated"] for r in faulty],
    )


if __name__ == "__main__":
    main()
