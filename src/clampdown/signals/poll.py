"""Poll delivery (RFC 8936): Clampdown asks the transmitter's poll endpoint for SETs, takes each in
as a pushed one is (signals/receiver.py), and acknowledges it in its next request, or sends its
RFC 8935 error (`setErrs`). A SET whose jti was already taken in (the acknowledgement was lost) is
acknowledged again without being taken twice. Runs as the supervised job `ssf-poll` where the
embedded worker runs (one process polls)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx

from clampdown.errors import InvalidInput, TransientError
from clampdown.services.runtime import Runtime
from clampdown.signals import replay
from clampdown.signals.receiver import SignalReceivers, receivers_for
from clampdown.signals.tokens import unverified_claims

log = logging.getLogger(__name__)
TIMEOUT = 30.0
MAX_RESPONSE = 16 << 20  # bytes of one poll response


class SignalPoller:
    """One receiver's polling: what it still has to acknowledge, or refuse, at the next request."""

    def __init__(self, receivers: SignalReceivers, name: str) -> None:
        self.receivers = receivers
        self.name = name
        self.settings = receivers.receivers[name]
        self.acks: list[str] = []
        self.errors: dict[str, dict[str, str]] = {}

    def _request(self) -> dict[str, Any]:
        body: dict[str, Any] = {"maxEvents": self.settings.poll_max_events, "returnImmediately": True}
        if self.acks:
            body["ack"] = list(self.acks)
        if self.errors:
            body["setErrs"] = dict(self.errors)
        return body

    async def poll_once(self) -> bool:
        """One request: send the acknowledgements and errors owed, take in the SETs answered; True
        when the transmitter says it has more."""
        url = str(self.settings.poll_url)
        headers = {"Accept": "application/json"}
        if self.settings.poll_token is not None:
            headers["Authorization"] = f"Bearer {self.settings.poll_token.get_secret_value()}"
        try:
            response = await self.receivers.client(self.name).post(
                url, json=self._request(), headers=headers, timeout=TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"cannot poll {url}: {exc}", code="transmitter_unreachable") from None
        if response.status_code != 200 or len(response.content) > MAX_RESPONSE:
            raise TransientError(
                f"polling {url} answered {response.status_code}", code="transmitter_unreachable"
            )
        self.acks.clear()  # delivered: the transmitter has them now
        self.errors.clear()
        try:
            found = response.json()
        except ValueError:
            found = None
        sets = found.get("sets") if isinstance(found, dict) else None
        if not isinstance(sets, dict):
            raise TransientError(
                f"polling {url}: the answer has no sets object", code="transmitter_misconfigured"
            )
        for jti, token in sets.items():
            await self._take(str(jti), token, url)
        return bool(found.get("moreAvailable")) if isinstance(found, dict) else False

    async def _take(self, jti: str, token: Any, url: str) -> None:
        if not isinstance(token, str):
            self.errors[jti] = {"err": "invalid_request", "description": "the SET is not a string"}
            return
        stated = unverified_claims(token) or {}
        if stated.get("jti") == jti and await replay.seen(self.receivers.engine, self.settings.issuer, jti):
            self.acks.append(jti)  # taken in before; its acknowledgement was lost
            return
        try:
            await self.receivers.take(self.name, token, source=url, delivery="poll")
        except InvalidInput as exc:
            self.errors[jti] = {"err": exc.code, "description": exc.message}
            return
        self.acks.append(jti)


async def run_polls(receivers: SignalReceivers, stop: asyncio.Event) -> None:
    """Poll every receiver that has a poll_url at its interval (at once while it has more) until
    `stop` is set; a failing transmitter waits its interval and is asked again."""
    pollers = [SignalPoller(receivers, n) for n, s in receivers.receivers.items() if s.poll_url]
    loop = asyncio.get_running_loop()
    due = {p.name: loop.time() for p in pollers}
    while pollers and not stop.is_set():
        for poller in pollers:
            if loop.time() < due[poller.name]:
                continue
            more = False
            try:
                more = await poller.poll_once()
            except Exception:
                log.exception("shared signals: polling receiver %s failed", poller.name)
            due[poller.name] = loop.time() + (0 if more else poller.settings.poll_interval_seconds)
        wait = max(0.05, min(due.values()) - loop.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)


def start_polls(rt: Runtime, state: Any) -> None:
    """Start the job `ssf-poll` when a receiver polls its transmitter (RFC 8936)."""
    if any(s.poll_url for s in rt.settings.ssf.receivers.values()):
        receivers = receivers_for(rt, state)
        rt.jobs.start("ssf-poll", lambda stop: run_polls(receivers, stop))
