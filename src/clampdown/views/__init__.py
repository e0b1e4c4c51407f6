"""One JSON view per domain type, shared by the API, the console and every CLI `--json`.

Views sit above services and hunting and below api, web and cli: they read domain objects
(`View.model_validate(obj)`, from attributes) and never import api, web, cli, store, db or engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clampdown.views.actions import AccountStateView, AccountView, ActionErrorView, ActionView, BulkView
    from clampdown.views.audit import AuditBreakView, AuditCheckpointView, AuditReportView
    from clampdown.views.auth import IssuedTokenView, TokenView
    from clampdown.views.base import View
    from clampdown.views.hunting import (
        ActOnResultsView,
        AlertView,
        DetectionRuleView,
        EventColumnView,
        EventTableView,
        QueryCheckView,
        QueryResultView,
        RuleRunView,
        SavedQueryView,
    )
    from clampdown.views.people import LinkedAccountView, PersonView
    from clampdown.views.playbooks import (
        ContainmentView,
        DriftView,
        PlanItemView,
        PlaybookRunView,
        ResidualAccessView,
        WatchRoundView,
    )
    from clampdown.views.signals import (
        ReceivedSignalView,
        ReceiverHealthView,
        SentSignalView,
        SignalsHealthView,
        StreamHealthView,
        StreamView,
        TransmitterHealthView,
    )
    from clampdown.views.workers import WorkerView

# Imported when first used: `from clampdown.views.actions import ...` (the CLI's) then loads no
# hunting view, and with it no DuckDB.
_WHERE = {
    "AccountStateView": "clampdown.views.actions",
    "AccountView": "clampdown.views.actions",
    "ActOnResultsView": "clampdown.views.hunting",
    "ActionErrorView": "clampdown.views.actions",
    "ActionView": "clampdown.views.actions",
    "AlertView": "clampdown.views.hunting",
    "AuditBreakView": "clampdown.views.audit",
    "AuditCheckpointView": "clampdown.views.audit",
    "AuditReportView": "clampdown.views.audit",
    "BulkView": "clampdown.views.actions",
    "ContainmentView": "clampdown.views.playbooks",
    "DetectionRuleView": "clampdown.views.hunting",
    "DriftView": "clampdown.views.playbooks",
    "EventColumnView": "clampdown.views.hunting",
    "EventTableView": "clampdown.views.hunting",
    "IssuedTokenView": "clampdown.views.auth",
    "LinkedAccountView": "clampdown.views.people",
    "PersonView": "clampdown.views.people",
    "PlanItemView": "clampdown.views.playbooks",
    "PlaybookRunView": "clampdown.views.playbooks",
    "QueryCheckView": "clampdown.views.hunting",
    "QueryResultView": "clampdown.views.hunting",
    "ReceivedSignalView": "clampdown.views.signals",
    "ReceiverHealthView": "clampdown.views.signals",
    "ResidualAccessView": "clampdown.views.playbooks",
    "RuleRunView": "clampdown.views.hunting",
    "SavedQueryView": "clampdown.views.hunting",
    "SentSignalView": "clampdown.views.signals",
    "SignalsHealthView": "clampdown.views.signals",
    "StreamHealthView": "clampdown.views.signals",
    "StreamView": "clampdown.views.signals",
    "TokenView": "clampdown.views.auth",
    "TransmitterHealthView": "clampdown.views.signals",
    "View": "clampdown.views.base",
    "WatchRoundView": "clampdown.views.playbooks",
    "WorkerView": "clampdown.views.workers",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "AccountStateView",
    "AccountView",
    "ActOnResultsView",
    "ActionErrorView",
    "ActionView",
    "AlertView",
    "AuditBreakView",
    "AuditCheckpointView",
    "AuditReportView",
    "BulkView",
    "ContainmentView",
    "DetectionRuleView",
    "DriftView",
    "EventColumnView",
    "EventTableView",
    "IssuedTokenView",
    "LinkedAccountView",
    "PersonView",
    "PlanItemView",
    "PlaybookRunView",
    "QueryCheckView",
    "QueryResultView",
    "ReceivedSignalView",
    "ReceiverHealthView",
    "ResidualAccessView",
    "RuleRunView",
    "SavedQueryView",
    "SentSignalView",
    "SignalsHealthView",
    "StreamHealthView",
    "StreamView",
    "TokenView",
    "TransmitterHealthView",
    "View",
    "WatchRoundView",
    "WorkerView",
]
