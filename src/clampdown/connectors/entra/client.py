"""The Graph HTTP client: bearer tokens (renewed once when Graph rejects one), shared pacing,
429/503 honoured with Retry-After, and JSON batching that retries only the sub-requests that
were throttled or failed transiently."""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from clampdown.connectors.entra.auth import TokenSource
from clampdown.connectors.entra.graph_errors import RETRYABLE_STATUSES, retry_after
from clampdown.connectors.entra.pacing import AdaptiveWindow, Pacer, TenantPacer
from clampdown.connectors.entra.settings import EntraSettings
from clampdown.connectors.links import is_relative_path, same_origin_path
from clampdown.errors import AccountNotFound, PermanentError, TransientError

MAX_BATCH = 20
TRANSPORT_RETRIES = 2
# Full `$batch`es in flight before Graph has throttled anything (see AdaptiveWindow).
INITIAL_BATCHES_IN_FLIGHT = 6


@dataclass
class GraphReply:
    """One answer from Graph, or from one request inside a `$batch`."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class SubRequest:
    """A request that may travel inside a `$batch`: `url` is relative, without the version."""

    method: str
    url: str
    body: Any = None
    identity_protection: bool = False


@dataclass
class ClientStats:
    """What the client sent: HTTP requests (a `$batch` counts once) and throttled answers seen."""

    http_requests: int = 0
    batch_requests: int = 0
    throttled: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


def _inner_throttling(reply: GraphReply) -> tuple[int, float | None]:
    """How many requests inside a `$batch` answer were throttled, and their longest Retry-After."""
    if reply.status != 200 or not isinstance(reply.body, dict):
        return 0, None
    responses = reply.body.get("responses")
    if not isinstance(responses, list):
        return 0, None
    throttled = [r for r in responses if isinstance(r, dict) and r.get("status") == 429]
    hints = [h for r in throttled if (h := retry_after(r.get("headers") or {})) is not None]
    return len(throttled), max(hints, default=None)


def _body(response: httpx.Response) -> Any:
    """The JSON body; a proxy's or gateway's HTML error page becomes a Graph-shaped error."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        text = " ".join(response.text.split())[:200]
        return {"error": {"code": "NonJsonResponse", "message": f"not a Graph answer: {text}"}}


_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# The characters Entra allows in a user principal name; no `/`, `\\`, `%`, `?`, space or a leading `$`
# (which Graph reads as a path function), so a UPN is always one plain path segment.
_UPN = re.compile(r"[A-Za-z0-9'._!#^~+&-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def addressable(reference: str) -> bool:
    """Whether Graph may be asked for the reference by path: an object id or a well-formed UPN."""
    return bool(_GUID.fullmatch(reference) or _UPN.fullmatch(reference))


def user_path(reference: str) -> str:
    """`/users/{id or UPN}` with the reference escaped for a path segment; anything else is refused
    (it is looked up by `$filter`, where no word is special)."""
    if not addressable(reference):
        raise AccountNotFound(f"'{reference}' is neither an Entra object id nor a user principal name")
    return "/users/" + quote(reference, safe="@")


def object_path(object_id: str, rest: str = "") -> str:
    """`/users/{id}{rest}` for an id Graph gave us, escaped whole so it stays one path segment."""
    return "/users/" + quote(object_id, safe="") + rest


class GraphClient:
    """One tenant's Graph endpoint, shared by every concurrent task of a connector."""

    def __init__(self, settings: EntraSettings, tokens: TokenSource) -> None:
        self.settings = settings
        self.tokens = tokens
        self.stats = ClientStats()
        # The tenant's pace: learned from Graph's 429s, never faster than requests_per_second.
        self.pacer = TenantPacer(settings.requests_per_second)
        self.identity_protection_pacer = Pacer(settings.identity_protection_interval_seconds)
        self._identity_protection_turn = asyncio.Lock()
        self.window = AdaptiveWindow(
            minimum=1,
            maximum=settings.max_connections * settings.batch_size,
            step=settings.batch_size,
            initial=INITIAL_BATCHES_IN_FLIGHT * settings.batch_size,
        )
        verify: ssl.SSLContext | bool = True
        if settings.ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(settings.ca_bundle))
        self.http = httpx.AsyncClient(
            base_url=settings.graph_url.rstrip("/"),
            verify=verify,
            # pool=None: under a tenant-wide incident requests wait for a connection, never fail for one.
            timeout=httpx.Timeout(settings.timeout_seconds, pool=None),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
            headers={"Accept": "application/json", "User-Agent": "Clampdown/0.1 (identity threat response)"},
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    def follow(self, link: str) -> str:
        """The path (below the version) of a link Graph gave (`@odata.nextLink`), only if it is on
        the configured Graph URL; a link elsewhere is refused, so the token never goes there."""
        path = same_origin_path(link, self.settings.graph_url)
        if path is None:
            raise PermanentError(
                f"Graph answered with a next link to {link[:200]!r}, not on {self.settings.graph_url};"
                " not followed",
                code="foreign_link",
            )
        return path

    def _backoff(self, attempt: int, identity_protection: bool) -> float:
        base = max(self.settings.identity_protection_interval_seconds, 1.0) if identity_protection else 0.5
        return float(min(base * 2**attempt, 30.0))

    async def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        identity_protection: bool = False,
        weight: int = 1,
        headers: dict[str, str] | None = None,
    ) -> GraphReply:
        """Send one request and return Graph's final answer, after bounded retries of throttled
        and transient failures (the caller maps a non-2xx answer to an error). `headers`: extra
        request headers (`ConsistencyLevel: eventual` for an advanced query)."""
        if identity_protection:
            # One Identity Protection request at a time: spacing each from the previous answer is
            # the only way to keep ~1/s where the tenant counts it, whatever the latency.
            async with self._identity_protection_turn:
                return await self._send(method, path, params, json, True, weight, headers)
        return await self._send(method, path, params, json, False, weight, headers)

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        json: Any,
        identity_protection: bool,
        weight: int,
        headers: dict[str, str] | None = None,
    ) -> GraphReply:
        if not is_relative_path(path):
            raise PermanentError(
                f"refusing to send the Graph token to {path!r}: not a path on {self.settings.graph_url}",
                code="foreign_url",
            )
        # Identity Protection has its own limit (its 429 names no wait): its spacing is apart, and its
        # answers teach the tenant's pace nothing; it still takes its turn in the tenant's pace.
        pause = self.identity_protection_pacer.pause if identity_protection else self.pacer.pause
        renewed = False
        transport_failures = transient_failures = throttled_rounds = 0
        waited = 0.0
        while True:
            if identity_protection:
                await self.identity_protection_pacer.acquire()
            token = await self.tokens.token()
            started = await self.window.acquire(weight)
            paced = await self.pacer.acquire(weight)
            try:
                response = await self.http.request(
                    method, path, params=params, json=json,
                    headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                )  # fmt: skip
            except httpx.TransportError as exc:
                await self.window.release(weight, started, throttled=False)
                transport_failures += 1
                if transport_failures > TRANSPORT_RETRIES:
                    raise TransientError(
                        f"cannot reach Microsoft Graph at {self.settings.graph_url}: "
                        f"{type(exc).__name__}: {exc}",
                        code="provider_unreachable",
                    ) from None
                await asyncio.sleep(self._backoff(transport_failures, False))
                continue
            if identity_protection:
                self.identity_protection_pacer.completed()
            self.stats.http_requests += 1
            self.stats.statuses[response.status_code] = self.stats.statuses.get(response.status_code, 0) + 1
            reply = GraphReply(response.status_code, dict(response.headers), _body(response))
            inner_throttled, inner_hint = _inner_throttling(reply)
            if not identity_protection:
                self.pacer.answered(
                    paced,
                    weight,
                    throttled=reply.status == 429,
                    hint=retry_after(reply.headers) if reply.status == 429 else None,
                    items_throttled=inner_throttled,
                    items_hint=inner_hint,
                )
            await self.window.release(weight, started, throttled=reply.status == 429 or inner_throttled > 0)
            if reply.status == 401 and not renewed:
                # Expired or revoked before its time: get a fresh token once, then let 401 stand.
                renewed = True
                await self.tokens.invalidate(token)
                continue
            if reply.status == 429:
                self.stats.throttled += 1
                wait = retry_after(reply.headers)
                wait = wait if wait is not None else self._backoff(throttled_rounds, identity_protection)
                throttled_rounds += 1
                if waited + wait > self.settings.throttle_patience_seconds:
                    return reply
                waited += wait
                pause(wait)
                continue
            if (
                reply.status in RETRYABLE_STATUSES
                and transient_failures < self.settings.max_transient_retries
            ):
                transient_failures += 1
                wait = retry_after(reply.headers)
                pause(wait if wait is not None else self._backoff(transient_failures, identity_protection))
                continue
            return reply

    async def batch(self, requests: list[SubRequest]) -> list[GraphReply]:
        """One `$batch` of up to 20 requests; the answers in request order. A failure of the batch
        itself is returned as every item's answer."""
        assert 0 < len(requests) <= MAX_BATCH
        payload = []
        for index, sub in enumerate(requests, start=1):
            item: dict[str, Any] = {"id": str(index), "method": sub.method, "url": sub.url}
            if sub.body is not None:
                item["headers"] = {"Content-Type": "application/json"}
                item["body"] = sub.body
            payload.append(item)
        self.stats.batch_requests += 1
        outer = await self.send("POST", "/$batch", json={"requests": payload}, weight=len(requests))
        if outer.status != 200 or not isinstance(outer.body, dict):
            return [outer] * len(requests)
        by_id = {str(r.get("id")): r for r in outer.body.get("responses", [])}
        replies = []
        for index in range(1, len(requests) + 1):
            raw = by_id.get(str(index))
            if raw is None:
                replies.append(
                    GraphReply(
                        502,
                        {},
                        {"error": {"code": "MissingBatchResponse", "message": "no answer for this request"}},
                    )
                )
                continue
            replies.append(GraphReply(int(raw["status"]), dict(raw.get("headers") or {}), raw.get("body")))
        return replies

    async def run_many(self, requests: list[SubRequest]) -> list[GraphReply]:
        """Answers for many requests, in order: `$batch`es of 20 sent concurrently, and only the
        throttled or transiently failed sub-requests sent again (bounded)."""
        if len(requests) == 1:
            sub = requests[0]
            return [
                await self.send(
                    sub.method, sub.url, json=sub.body, identity_protection=sub.identity_protection
                )
            ]
        replies: list[GraphReply | None] = [None] * len(requests)
        failures = [0] * len(requests)  # 5xx answers per sub-request
        pending = list(range(len(requests)))
        size = self.settings.batch_size
        waited = 0.0
        rounds = 0
        while pending:
            chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
            answers = await asyncio.gather(*(self.batch([requests[i] for i in chunk]) for chunk in chunks))
            retry: list[int] = []
            waits: list[float] = []
            for chunk, got in zip(chunks, answers, strict=True):
                for index, reply in zip(chunk, got, strict=True):
                    replies[index] = reply
                    if reply.status == 429:
                        self.stats.throttled += 1
                    elif reply.status in RETRYABLE_STATUSES:
                        failures[index] += 1
                        if failures[index] > self.settings.max_transient_retries:
                            continue
                    else:
                        continue
                    retry.append(index)
                    hint = retry_after(reply.headers)
                    waits.append(hint if hint is not None else self._backoff(rounds, False))
            rounds += 1
            wait = max(waits, default=0.0)
            if not retry or waited + wait > self.settings.throttle_patience_seconds:
                break
            waited += wait
            self.pacer.pause(wait)
            pending = retry
        return [r for r in replies if r is not None]
