"""One JSON view per domain type, shared by the API, the console and every CLI `--json`.

Views sit above services and hunting and below api, web and cli: they read domain objects
(`View.model_validate(obj)`, from attributes) and never import api, web, cli, store, db or engine.
"""

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
from clampdown.views.workers import WorkerView

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
    "QueryResultView",
    "ResidualAccessView",
    "RuleRunView",
    "SavedQueryView",
    "TokenView",
    "View",
    "WatchRoundView",
    "WorkerView",
]
