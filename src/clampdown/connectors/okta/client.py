"""One HTTP client per Okta org: authentication, pacing, retries and Okta's error bodies.

Retries here are the quick, safe ones: a 429 waits for the window to reset (so throttling never
fails an action), a 5xx or a dropped connection is retried `retries` times. Everything else is
left to the engine's retry policy, by raising TransientError.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from clampdown.connectors.links import is_relative_path, same_origin_path
from clampdown.connectors.okta.auth import OktaAuth
from clampdown.connectors.okta.pacer import RateHeaders, RateLimitPacer, okta_bucket
from clampdown.errors import PermanentError, TransientError

USER_AGENT = "clampdown-okta-connector/0.1"


@dataclass(frozen=True)
class OktaAnswer:
    """An answer from Okta, with the parsed error body when it is an error."""

    status: int
    body: Any
    headers: httpx.Headers
    request_id: str | None
    ambiguous_retries: int = 0  # earlier attempts whose effect is unknown (lost answer, 5xx)

    @property
    def error_code(self) -> str | None:
        return self.body.get("errorCode") if isinstance(self.body, dict) else None

    @property
    def error_text(self) -> str:
        """Okta's summary and causes, for a message a person reads."""
        if not isinstance(self.body, dict):
            return f"HTTP {self.status}"
        causes = [
            c.get("errorSummary", "") for c in self.body.get("errorCauses") or [] if isinstance(c, dict)
        ]
        text = str(self.body.get("errorSummary") or f"HTTP {self.status}")
        return f"{text} ({'; '.join(causes)})" if causes else text


@dataclass
class RequestStats:
    """What the client did, for benchmarks and diagnostics."""

    requests: int = 0
    throttled: int = 0
    retries: int = 0
    token_refreshes: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class OktaClient:
    """Sends requests to one org; safe to share among many concurrent tasks."""

    def __init__(
        self,
        org_url: str,
        auth: OktaAuth,
        pacer: RateLimitPacer,
        *,
        retries: int = 2,
        timeout: float = 30.0,
        max_throttle_wait: float = 180.0,
        max_connections: int = 16,
        verify: bool = True,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.org_url = org_url
        self.auth = auth
        self.pacer = pacer
        self.retries = retries
        self.timeout = timeout
        self.max_throttle_wait = max_throttle_wait
        self.clock = clock
        self.sleep = sleep
        self.stats = RequestStats()
        self.http = httpx.AsyncClient(
            base_url=org_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            verify=verify,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def follow(self, link: str) -> str:
        """The path of a link Okta gave (`Link: rel="next"`), only if it is on the org itself;
        a link elsewhere is refused, so the pull stops there and says why."""
        path = same_origin_path(link, self.org_url)
        if path is None:
            raise PermanentError(
                f"Okta answered with a link to {link[:200]!r}, not on the org {self.org_url}; not followed",
                code="foreign_link",
            )
        return path

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> OktaAnswer:
        """Send one request, waiting out rate limits and retrying lost answers; any final status.
        `path` is a path on the org: the credentials never go to another host. `body` is sent as
        JSON; a POST or PUT without one is sent empty (Okta wants `Content-Length: 0`)."""
        if not is_relative_path(path):
            raise PermanentError(
                f"refusing to send Okta credentials to {path!r}: not a path on the org", code="foreign_url"
            )
        bucket = okta_bucket(method, path)
        started = self.clock()
        failures = 0
        refreshed = False
        while True:
            number = await self.pacer.acquire(bucket, deadline=started + self.max_throttle_wait)
            response: httpx.Response | None = None
            try:
                authorization = await self.auth.header(self.http)
                send_headers = {"Authorization": authorization, **(headers or {})}
                if method in ("POST", "PUT"):
                    send_headers["Content-Type"] = "application/json"
                self.stats.requests += 1
                response = await self.http.request(
                    method,
                    path,
                    params=params,
                    headers=send_headers,
                    content=_content(method, body),
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.retries:
                    why = (
                        f"timed out: no answer within {self.timeout:g} s (timeout_seconds)"
                        if isinstance(exc, httpx.TimeoutException)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    raise TransientError(
                        f"Okta did not answer {method} {path} after {failures} attempts ({why})",
                        code="okta_unreachable",
                    ) from None
                self.stats.retries += 1
                await self.sleep(min(0.2 * 2 ** (failures - 1), 2.0))
                continue
            finally:
                self.pacer.release(bucket, number, response)
            status = response.status_code
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            if status == 429:
                self.stats.throttled += 1
                await self._wait_for_window(bucket, response, started, method, path)
                continue
            if status == 401 and not refreshed and self.auth.invalidate(authorization):
                refreshed = True  # an expired or revoked access token: fetch a new one, once
                self.stats.token_refreshes += 1
                continue
            if status >= 500:
                failures += 1
                if failures > self.retries:
                    answer = _answer(response, failures)
                    raise TransientError(
                        f"Okta answered HTTP {status} to {method} {path} {failures} times: "
                        f"{answer.error_text}",
                        code="okta_unavailable",
                        provider_request_id=answer.request_id,
                    )
                self.stats.retries += 1
                await self.sleep(min(0.2 * 2 ** (failures - 1), 2.0))
                continue
            return _answer(response, failures)

    async def _wait_for_window(
        self, bucket: str, response: httpx.Response, started: float, method: str, path: str
    ) -> None:
        headers = RateHeaders.parse(response)
        now = self.clock()
        reset = headers.reset if headers is not None and headers.reset > now else now + 1.0
        if headers is None or headers.limit == 0 or headers.reset <= now:
            # The concurrent-request limit (limit 0), or a reset already past: Okta still said
            # no, so hold the bucket a little rather than retry at once.
            self.pacer.hold_until(bucket, reset)
        if reset - started > self.max_throttle_wait:
            raise TransientError(
                f"Okta rate limit for {method} {path} (E0000047) resets in {reset - now:.0f} s, "
                f"beyond the {self.max_throttle_wait:.0f} s this request may wait",
                code="okta_rate_limited",
                retry_after=max(reset - now, 1.0),
                provider_request_id=response.headers.get("X-Okta-Request-Id"),
            )
        # The pacer now holds the bucket until the reset; acquire() does the waiting.


def _content(method: str, body: dict[str, Any] | None) -> bytes | None:
    if body is not None:
        return json.dumps(body, separators=(",", ":")).encode()
    return b"" if method in ("POST", "PUT") else None


def _answer(response: httpx.Response, ambiguous: int) -> OktaAnswer:
    body: Any = None
    if response.content:
        try:
            body = response.json()
        except ValueError:
            body = response.text
    return OktaAnswer(
        response.status_code, body, response.headers, response.headers.get("X-Okta-Request-Id"), ambiguous
    )
