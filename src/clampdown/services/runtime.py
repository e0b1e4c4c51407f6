"""Opens what a command or the server needs: settings, database, connectors, services."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.anchor import Anchor
from clampdown.audit.chain import AuditLog
from clampdown.audit.recorder import EventOutput, EventRecorder
from clampdown.audit.ssf_out import ContainmentAnnouncer, SsfPusher, outbox_by_status
from clampdown.audit.syslog import SyslogOutput
from clampdown.audit.webhooks import WebhookDispatcher, deliveries_by_status
from clampdown.auth.service import AuthService
from clampdown.config import Settings
from clampdown.connectors.base import Connector
from clampdown.connectors.registry import build_connectors
from clampdown.db.database import create_engine, is_sqlite
from clampdown.db.migrate import current_revision, head_revision, upgrade
from clampdown.engine.supervisor import JobHealth, Supervisor
from clampdown.engine.worker import EMBEDDED, STANDALONE, Worker
from clampdown.errors import ConfigError, StoreUnavailable
from clampdown.policy import PolicyGate
from clampdown.secevents import TransmitterKeys
from clampdown.services.actions import ActionService
from clampdown.services.approvals import ApprovalService
from clampdown.services.playbooks import PlaybookService
from clampdown.services.watch import ContainmentWatch
from clampdown.services.workers import WorkerService
from clampdown.store.actions import ActionStore
from clampdown.store.approvals import ApprovalStore
from clampdown.store.auth import AuthStore
from clampdown.store.containments import ContainmentStore

CONNECT_TIMEOUT = 10.0


def safe_url(url: str) -> str:
    """The database URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def _check_sqlite_path(url: str) -> None:
    """A SQLite file's folder must exist; checked up front so the driver never fails half-way."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return
    folder = Path(database).expanduser().resolve().parent
    where = f"cannot reach the database at {safe_url(url)}: folder {folder}"
    if not folder.is_dir():
        raise StoreUnavailable(f"{where} does not exist")
    if not os.access(folder, os.W_OK):
        raise StoreUnavailable(f"{where} is not writable")


async def ping_database(engine: AsyncEngine, url: str) -> None:
    """StoreUnavailable with the reason if the database cannot be reached."""
    if is_sqlite(url):
        _check_sqlite_path(url)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except TimeoutError:
        raise StoreUnavailable(f"cannot reach the database at {safe_url(url)}: timed out") from None
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise StoreUnavailable(f"cannot reach the database at {safe_url(url)}: {reason}") from None


async def require_current_schema(engine: AsyncEngine) -> None:
    """ConfigError unless the database schema is at the newest migration."""
    current, head = await current_revision(engine), head_revision()
    if current != head:
        state = "is empty" if current is None else f"is at revision {current}, this version needs {head}"
        raise ConfigError(f"the database {state}: run `clampdown db upgrade`")


@dataclass(frozen=True)
class Counts:
    """What the action center and the webhook and SSF outboxes hold now, for metrics."""

    actions: list[tuple[str, str, int]]  # (type, status, how many)
    webhook_deliveries: list[tuple[str, int]]  # (status, how many)
    ssf_outbox: list[tuple[str, int]] = field(default_factory=list)  # (status, how many)


async def upgrade_schema(settings: Settings) -> None:
    """Create or migrate the schema of the configured database."""
    engine = create_engine(settings.database.url)
    try:
        await ping_database(engine, settings.database.url)
        await upgrade(engine)
    finally:
        await engine.dispose()


def is_sqlite_url(url: str) -> bool:
    """Whether a database URL names SQLite (the embedded default)."""
    return is_sqlite(url)


def embedded_worker_enabled(settings: Settings) -> bool:
    """SQLite: one worker inside the server. PostgreSQL: separate `clampdown worker` processes."""
    if settings.server.embedded_worker is not None:
        return settings.server.embedded_worker
    return is_sqlite(settings.database.url)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    store: ActionStore
    connectors: dict[str, Connector]
    actions: ActionService
    auth: AuthService
    approvals: ApprovalService
    playbooks: PlaybookService
    audit: AuditLog
    workers: WorkerService
    anchor: Anchor | None = None  # checkpoints of the audit chain, when a key is configured
    syslog: SyslogOutput | None = None  # the syslog outbox's sender (job "syslog"), when configured
    # Clampdown as a Shared Signals transmitter ([ssf.transmitter]): its keys (the published JWKS),
    # and the push sender of its outbox (job "ssf-push"), woken when a containment is announced.
    ssf_keys: TransmitterKeys | None = None
    ssf_pusher: SsfPusher | None = None
    # The background jobs of this process (worker, webhooks, hunting), restarted when they fail.
    jobs: Supervisor = field(default_factory=Supervisor)

    def worker(self, *, embedded: bool = False) -> Worker:
        """A worker with this runtime's connectors, engine settings and protection rules."""
        kind = EMBEDDED if embedded else STANDALONE
        return Worker(
            self.store, self.connectors, self.settings.engine, gate=self.actions.guardrails, kind=kind
        )

    def watch(self) -> ContainmentWatch:
        """The containment watch over this runtime's containments and connectors."""
        return ContainmentWatch(
            self.actions, self.playbooks.containments, self.settings.playbooks, self.settings.watch
        )

    def job_health(self) -> list[JobHealth]:
        """Each background job's health, for /readyz."""
        return self.jobs.health()

    def webhook_dispatcher(self) -> WebhookDispatcher | None:
        """The outbox's delivery loop, when webhooks are configured."""
        return WebhookDispatcher(self.engine, self.settings.webhooks) if self.settings.webhooks else None

    async def counts(self) -> Counts:
        ssf = await outbox_by_status(self.engine) if self.ssf_keys is not None else []
        return Counts(
            await self.store.count_by_type_and_status(), await deliveries_by_status(self.engine), ssf
        )


@asynccontextmanager
async def open_runtime(settings: Settings, *, check_schema: bool = True) -> AsyncIterator[Runtime]:
    """Connect to the database and build the configured connectors; closes them on exit."""
    connectors = build_connectors(settings)
    engine = create_engine(settings.database.url, echo=settings.database.echo)
    syslog: SyslogOutput | None = None
    try:
        await ping_database(engine, settings.database.url)
        if check_schema:
            await require_current_schema(engine)
        syslog = SyslogOutput(engine, settings.syslog) if settings.syslog else None
        outputs: list[EventOutput] = []
        transmitter, ssf_keys, pusher = settings.ssf.transmitter, None, None
        if transmitter is not None:  # a key that cannot be read fails here, naming the file
            ssf_keys = TransmitterKeys.load(transmitter.signing_key_file, transmitter.previous_key_files)
            pusher = SsfPusher(engine, transmitter)
            outputs.append(ContainmentAnnouncer(transmitter, ssf_keys, wake=pusher.notify))
        recorder = EventRecorder(settings.webhooks, syslog, outputs)
        store = ActionStore(engine, recorder)
        session_secret = settings.server.session_secret
        auth = AuthService(
            AuthStore(engine, recorder),
            signin=settings.signin,
            secret=session_secret.get_secret_value().encode() if session_secret is not None else None,
            directories=frozenset(settings.providers),
        )
        guardrails = PolicyGate(settings.protection, settings.approvals)
        actions = ActionService(store, connectors, record_denial=auth.record_denial, guardrails=guardrails)
        approvals = ApprovalService(actions, ApprovalStore(engine, recorder))
        playbooks = PlaybookService(actions, settings.playbooks, ContainmentStore(store))
        key = settings.audit.checkpoint_key
        secret = key.get_secret_value().encode() if key is not None else None
        anchor = Anchor(engine, secret, settings.audit, recorder) if secret is not None else None
        workers = WorkerService(engine, actions)
        yield Runtime(
            settings, engine, store, connectors, actions, auth, approvals, playbooks,
            AuditLog(engine, secret), workers, anchor, syslog, ssf_keys=ssf_keys, ssf_pusher=pusher,
        )  # fmt: skip
    finally:
        if syslog is not None:  # what this process queued goes out now if the receiver answers
            await syslog.aclose()
        for connector in connectors.values():
            await connector.aclose()
        await engine.dispose()
