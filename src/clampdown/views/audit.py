"""The view of an audit chain check."""

from __future__ import annotations

from clampdown.views.base import View


class AuditBreakView(View):
    seq: int
    problem: str


class AuditReportView(View):
    entries: int
    ok: bool
    breaks: list[AuditBreakView]
