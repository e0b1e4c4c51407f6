"""The view of an audit chain check and of its signed checkpoints."""

from __future__ import annotations

from datetime import datetime

from clampdown.views.base import View


class AuditBreakView(View):
    seq: int
    problem: str


class AuditCheckpointView(View):
    seq: int
    hash: str
    entries: int
    at: datetime
    signature: str


class AuditReportView(View):
    entries: int
    ok: bool
    breaks: list[AuditBreakView]
    anchored: bool  # a signed checkpoint verified and the chain matches it
    checkpoint: AuditCheckpointView | None  # the latest checkpoint that verified
    warnings: list[str]  # what is not covered: no key configured, entries newer than the checkpoint
