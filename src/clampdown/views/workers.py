"""The view of a registered worker, as `clampdown workers --json` and /api/v1/workers show it."""

from __future__ import annotations

from datetime import datetime

from clampdown.views.base import View


class WorkerView(View):
    """A worker: where it runs, when it was last seen, whether it is live, the actions it holds."""

    id: str
    host: str
    pid: int
    kind: str  # embedded (in `clampdown serve`) or standalone (`clampdown worker`)
    started_at: datetime
    last_seen_at: datetime
    expires_at: datetime  # dead once this passes without a heartbeat
    live: bool
    inflight: int  # actions in flight at its last heartbeat
    holds: list[int]  # the actions running under its lease now
