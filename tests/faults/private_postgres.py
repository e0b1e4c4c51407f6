"""A private PostgreSQL cluster for fault tests: created, restarted and dropped by the test alone.

The machine's cluster on 5432 is shared (other tests and people use it at the same time), so a test
that restarts PostgreSQL makes its own with Debian's cluster tools (postgresql-common, installed
with the server by scripts/install-system.sh), on a free port with trust authentication for
local TCP, and drops it afterwards whatever happened.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

_CONFIG_ROOT = Path("/etc/postgresql")
_TOOLS = ("pg_createcluster", "pg_ctlcluster", "pg_dropcluster")


def unavailable_reason() -> str | None:
    """Why a private cluster cannot be made here, or None when it can."""
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"PostgreSQL's cluster tools are not installed ({', '.join(missing)})"
    if not _CONFIG_ROOT.is_dir() or not any(_CONFIG_ROOT.iterdir()):
        return "no PostgreSQL server version under /etc/postgresql"
    if os.geteuid() != 0:
        return "creating a PostgreSQL cluster needs root (as in CI)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*args: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")


@dataclass
class PrivateCluster:
    """One cluster of the installed server version, e.g. 15/clampdown_faults_1a2b3c4d on port 40123."""

    version: str
    name: str
    port: int

    @classmethod
    def create(cls) -> PrivateCluster:
        """Create and start a new cluster with trust authentication; drop it with `drop()`."""
        version = sorted(p.name for p in _CONFIG_ROOT.iterdir())[0]
        cluster = cls(version, f"clampdown_faults_{uuid.uuid4().hex[:8]}", _free_port())
        _run("pg_createcluster", version, cluster.name, "--port", str(cluster.port), "--", "--auth=trust")
        try:
            hba = (_CONFIG_ROOT / version / cluster.name / "pg_hba.conf").read_text()
            rules = [line.split() for line in hba.splitlines() if not line.startswith("#")]
            if ["host", "all", "all", "127.0.0.1/32", "trust"] not in rules:
                raise RuntimeError(f"the new cluster's pg_hba.conf does not trust 127.0.0.1:\n{hba}")
            cluster._ctl("start")
            cluster.wait_ready()
        except BaseException:
            cluster.drop()
            raise
        return cluster

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def started_at(self) -> float:
        """When the server (postmaster) last started, as a Unix time."""
        self.wait_ready()
        with psycopg.connect(self.admin_url, connect_timeout=30) as conn:
            row = conn.execute("SELECT extract(epoch FROM pg_postmaster_start_time())").fetchone()
        assert row is not None
        return float(row[0])

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=5):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def restart(self, mode: str = "fast", down_seconds: float = 0.0) -> None:
        """Stop the server (`fast`: every session is terminated, open transactions roll back;
        `immediate`: the server quits without a checkpoint and recovers at start) and start it
        again, at once (`pg_ctlcluster restart`) or after `down_seconds`."""
        if not down_seconds:
            self._ctl("restart", "-m", mode)
            return
        self._ctl("stop", "-m", mode)
        time.sleep(down_seconds)
        self._ctl("start")

    def drop(self) -> None:
        """Stop the cluster if it runs and delete it with its data."""
        _run("pg_dropcluster", "--stop", self.version, self.name)

    def _ctl(self, action: str, *options: str) -> None:
        # --skip-systemctl-redirect: act on the cluster directly, with or without systemd.
        _run("pg_ctlcluster", "--skip-systemctl-redirect", *options, self.version, self.name, action)
