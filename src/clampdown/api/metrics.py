"""/metrics: Prometheus text, the engine's counters plus the action center's counts at scrape time.

With `metrics.token` set, a scrape needs `Authorization: Bearer <token>` (Prometheus' `authorization`
setting); with `metrics.listen`, /metrics is also served on a listener of its own (server.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import SecretStr

from clampdown.api.auth import runtime
from clampdown.auth.compare import same_secret
from clampdown.auth.service import Unauthenticated

router = APIRouter(tags=["health"])


def _gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], int]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
    return "\n".join(lines) + "\n"


def _require_scrape_token(request: Request, token: SecretStr | None) -> None:
    """Unauthenticated (401) unless the configured scrape token is sent as a bearer token."""
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not same_secret(given.strip(), token.get_secret_value()):
        raise Unauthenticated("metrics need 'Authorization: Bearer <metrics.token>'")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Actions by type and status, queue depth, webhook and SSF backlogs, provider latency and throttling."""
    rt = runtime(request)
    _require_scrape_token(request, rt.settings.metrics.token)
    counts = await rt.counts()
    by_status, webhooks = counts.actions, counts.webhook_deliveries
    queue = sum(int(n) for _, status, n in by_status if status in ("queued", "running"))
    text = _gauge(
        "clampdown_actions",
        "Actions in the action center, by type and status",
        [({"type": t, "status": s}, int(n)) for t, s, n in by_status],
    )
    text += _gauge("clampdown_queue_depth", "Actions queued or running", [({}, queue)])
    text += _gauge(
        "clampdown_webhook_deliveries",
        "Webhook deliveries by status",
        [({"status": s}, int(n)) for s, n in webhooks],
    )
    if rt.settings.ssf.transmitter is not None:
        text += _gauge(
            "clampdown_ssf_outbox",
            "Security Event Tokens in the Shared Signals outbox, by status",
            [({"status": s}, int(n)) for s, n in counts.ssf_outbox],
        )
    return Response(generate_latest(REGISTRY).decode() + text, media_type=CONTENT_TYPE_LATEST)
