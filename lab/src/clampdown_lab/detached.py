"""An emulator of the lab run as a detached process, found again by its files under `home`.

emulator.pid (whose pid it is), emulator.log (its output) and component.json (its port, kept so
that a restarted emulator answers where the lab's clampdown.toml already points).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class DetachedProcess:
    """`python -m MODULE ARGS --port N` under `home`, outliving the `clampdown lab up` that started it."""

    def __init__(self, home: Path, module: str, args: list[str], name: str) -> None:
        self.home = home
        self.module = module
        self.args = args
        self.name = name  # for messages: "Okta emulator"
        self.pid_file = home / "emulator.pid"
        self.log_file = home / "emulator.log"
        self.port_file = home / "component.json"

    def saved_port(self) -> int | None:
        """The port of the last start, if one is saved."""
        try:
            return int(json.loads(self.port_file.read_text(encoding="utf-8"))["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running_pid(self) -> int | None:
        """The pid in the pid file if that process is alive and is this module for this home."""
        try:
            pid = int(self.pid_file.read_text(encoding="utf-8").strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        try:  # a recycled pid is not our emulator
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return pid  # no /proc to ask: trust the pid file
        return pid if self.module in cmdline and str(self.home) in cmdline else None

    def start_or_reuse(
        self, url_at: Callable[[int], str], answers: Callable[[str], bool], timeout: float
    ) -> tuple[int, str]:
        """Reuse the running process if it answers at its saved port, else (re)start it there, or
        on a new port if that one is taken, and wait until it answers. Its pid and URL."""
        pid, port = self.running_pid(), self.saved_port()
        if pid is not None and port is not None and answers(url_at(port)):
            return pid, url_at(port)
        if pid is not None:
            self.stop(pid)
        port = port if port and _port_is_free(port) else _free_port()
        url = url_at(port)
        process = self.start(port)
        self.wait_until(process, lambda: answers(url), timeout, url)
        return process.pid, url

    def start(self, port: int) -> subprocess.Popen[bytes]:
        """Start it detached on `port`; the pid file and the saved port name it from now on."""
        command = [sys.executable, "-m", self.module, *self.args, "--port", str(port)]
        log = self.log_file.open("ab")
        process = subprocess.Popen(  # detached: it outlives `clampdown lab up`
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=self.home
        )
        log.close()  # the child has its own copy
        self.pid_file.write_text(str(process.pid), encoding="utf-8")
        self.port_file.write_text(json.dumps({"port": port}), encoding="utf-8")
        return process

    def wait_until(
        self, process: subprocess.Popen[bytes], check: Callable[[], bool], timeout: float, where: str
    ) -> None:
        """Wait until `check()` holds; RuntimeError with the log's end if `process` exits first or
        `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        while not check():
            # By the process, not the pid file: a fork is not yet the emulator.
            if time.monotonic() > deadline or process.poll() is not None:
                tail = self.log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"the {self.name} did not start at {where}; its log ends with:\n{tail}")
            time.sleep(0.1)

    def stop(self, pid: int) -> None:
        """SIGTERM, then SIGKILL if it still runs 10 seconds later."""
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while self._still_running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._still_running(pid):
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def down(self) -> None:
        """Stop it if it runs and forget its pid; the saved port stays for the next start."""
        pid = self.running_pid()
        if pid is not None:
            self.stop(pid)
        self.pid_file.unlink(missing_ok=True)

    def status(self, label: str, url_at: Callable[[int], str]) -> str:
        """One line: `LABEL: running at URL (pid N)` or `LABEL: stopped`."""
        pid = self.running_pid()
        if pid is None:
            return f"{label}: stopped"
        return f"{label}: running at {url_at(self.saved_port() or 0)} (pid {pid})"

    def _still_running(self, pid: int) -> bool:
        with contextlib.suppress(ChildProcessError):  # not our child: nothing to reap
            os.waitpid(pid, os.WNOHANG)  # reap it if this process started it, or it stays a zombie
        return self.running_pid() == pid
