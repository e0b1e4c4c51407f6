"""Views of dry-run plans and playbook runs."""

from __future__ import annotations

from clampdown.views.actions import ActionView
from clampdown.views.base import View


class PlanItemView(View):
    action: str
    provider: str
    target: str
    account: str | None
    current: str | None
    outcome: str
    linked_by: str | None = None


class PlaybookRunView(View):
    playbook: str
    person: str
    batch_id: str | None
    actions: list[ActionView]
    skipped: list[str]
    plan: list[PlanItemView]
