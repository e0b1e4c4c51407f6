"""/metrics: Prometheus text, the engine's counters plus the action center's counts at scrape time."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from clampdown.api.auth import runtime

router = APIRouter(tags=["health"])


def _gauge(name: str, help_text: str, samples: list[tuple[dict[str, str], int]]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}")
    return "\n".join(lines) + "\n"


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Actions by type and status, queue depth, webhook backlog, provider latency and throttling."""
    counts = await runtime(request).counts()
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
    return Response(generate_latest(REGISTRY).decode() + text, media_type=CONTENT_TYPE_LATEST)
