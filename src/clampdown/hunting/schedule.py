"""The hunting schedule inside `clampdown serve`: API pulls and due detection rules, until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any

from clampdown.connectors.base import Connector
from clampdown.errors import ClampdownError
from clampdown.hunting.identity import Lookup, refresh_identity_info
from clampdown.hunting.pulls import api_sources
from clampdown.hunting.rules import run_due_rules
from clampdown.hunting.service import HuntingService
from clampdown.services.runtime import Runtime

log = logging.getLogger(__name__)
# Each refresh looks up every recently seen account in its provider: hourly keeps that load small.
IDENTITY_REFRESH_SECONDS = 3600.0


async def pull_once(service: HuntingService, connectors: dict[str, Connector], page_size: int) -> None:
    """One pull from every configured API source; a failing source is logged and retried next time."""
    for source in api_sources(service.store, connectors, page_size):
        try:
            report = await source.pull()
            if report.added:
                log.info("%s: %d events added", report.source, report.added)
        except ClampdownError as exc:
            log.warning("hunting pull %s failed: %s", type(source).__name__, exc.message)
        except Exception:  # a bug or a driver's error, with its trace; the next source still pulls
            log.exception("hunting pull %s failed", type(source).__name__)


async def run_schedule(
    service: HuntingService, connectors: dict[str, Connector], stop: asyncio.Event
) -> None:
    """Pull and evaluate rules at their intervals until `stop` is set."""
    settings = service.store.settings
    loop = asyncio.get_running_loop()
    next_pull = next_rules = next_identities = loop.time()
    misses: set[Lookup] = set()  # accounts no directory knew, not asked again until the full refresh
    while not stop.is_set():
        now = loop.time()
        # Each part fails alone and waits its own interval after a failure, as after a success:
        # a part that fails at once every time must not spin the loop or starve the others.
        pulled = now >= next_pull
        if pulled:
            await _guarded("pull", pull_once(service, connectors, settings.pull_page_size))
            next_pull = loop.time() + settings.pull_interval_seconds
        if now >= next_identities:
            misses.clear()
            await _guarded("IdentityInfo refresh", _refresh_identities(service, connectors))
            next_identities = loop.time() + IDENTITY_REFRESH_SECONDS
        elif pulled:  # each pull round, the accounts new since: a new event is joined within a minute
            new = refresh_identity_info(service.store, connectors, only_unknown=True, misses=misses)
            await _guarded("IdentityInfo of new accounts", new)
        if now >= next_rules:
            await _guarded("detection rules", run_due_rules(service.store, service.actions, service.auth,
                                                                  service.playbooks))  # fmt: skip
            next_rules = loop.time() + min(settings.rules_interval_seconds, 60.0)
        wait = max(0.05, min(next_pull, next_rules) - loop.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


async def _refresh_identities(service: HuntingService, connectors: dict[str, Connector]) -> None:
    written = await refresh_identity_info(service.store, connectors)
    log.info("IdentityInfo: %d accounts refreshed", written)


async def _guarded(what: str, work: Awaitable[object]) -> None:
    """Run one part of a round; the schedule outlives any failure of it (the log has it)."""
    try:
        await work
    except Exception:
        log.exception("hunting schedule: %s failed", what)


def start_schedule(rt: Runtime, state: Any) -> None:
    """Start the schedule, as the runtime's supervised job `hunting`, for the app whose `state` is
    given (its HuntingService is kept there), unless [hunting] scheduled is off."""
    if not rt.settings.hunting.scheduled:
        return
    service = HuntingService.from_runtime(rt, open_now=False)
    state.hunting = service
    connectors = dict(rt.connectors)
    rt.jobs.start("hunting", lambda stop: run_schedule(service, connectors, stop))
