"""Prometheus metrics of the engine: provider latency, outcomes, throttling, background jobs."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PROVIDER_LATENCY = Histogram(
    "clampdown_provider_call_seconds",
    "Time of each call to a provider (resolve, read, perform), by configured directory and step",
    ["provider", "step"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OUTCOMES = Counter(
    "clampdown_action_outcomes_total",
    "Attempts that ended, by action type and outcome (completed, unchanged, failed, retried)",
    ["type", "outcome"],
)
THROTTLED = Counter(
    "clampdown_provider_throttled_total",
    "Attempts a provider throttled (429 or its rate limit), by configured directory",
    ["provider"],
)


def is_throttling(code: str) -> bool:
    """Whether a transient error's code says the provider throttled us."""
    lowered = code.lower()
    return "rate" in lowered or "throttl" in lowered or "429" in lowered


JOB_UP = Gauge(
    "clampdown_background_job_up",
    "1 while a background job (worker, webhooks, hunting) runs, 0 while it restarts or after it stopped",
    ["job"],
)
JOB_RESTARTS = Counter(
    "clampdown_background_job_restarts_total",
    "Restarts of a background job after it failed",
    ["job"],
)
