"""Each view builds from its domain object alone, in the shape the API has always returned."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import clampdown.views
from clampdown.audit.chain import Break, ChainReport
from clampdown.auth.service import IssuedToken
from clampdown.catalog import get_action
from clampdown.hunting.charts import Chart, ChartKind
from clampdown.hunting.query import Language, QueryResult
from clampdown.hunting.rules import Alert, DetectionRule, RuleRun
from clampdown.hunting.saved import SavedQuery
from clampdown.hunting.schema import EVENT_TABLES
from clampdown.hunting.service import ActOnResults
from clampdown.model import Account, AccountState, Action, ActionStatus, AttemptRecord
from clampdown.services.actions import BulkRequest
from clampdown.services.people import LinkedAccount, Person
from clampdown.services.planning import PlanItem
from clampdown.services.playbooks import PlaybookRun
from clampdown.store.auth import TokenRecord
from clampdown.views import (
    ActionView,
    ActOnResultsView,
    AlertView,
    AuditReportView,
    BulkView,
    DetectionRuleView,
    EventTableView,
    IssuedTokenView,
    PersonView,
    PlanItemView,
    PlaybookRunView,
    QueryResultView,
    RuleRunView,
    SavedQueryView,
    TokenView,
)

AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
ACCOUNT = Account("okta", "00u1", "alice@lab.example.test", {"login": "alice@lab.example.test"})
STATE = AccountState(enabled=True, status="ACTIVE", values={"groups": ["Staff"]})


def _action(**changes: object) -> Action:
    fields: dict[str, object] = {
        "id": 7, "type": "okta.suspend_user", "provider": "okta", "target": "alice",
        "status": ActionStatus.FAILED, "requested_by": "ana", "reason": "INC-1", "requested_at": AT,
        "attempts": 2, "account": ACCOUNT, "state_before": STATE, "error_code": "rate_limited",
        "error_message": "slow down", "history": (AttemptRecord(1, "w1", AT, "timeout", "no answer", AT),),
    }  # fmt: skip
    return Action(**{**fields, **changes})  # type: ignore[arg-type]


def test_action_view_reads_the_action() -> None:
    data = ActionView.model_validate(_action()).model_dump(mode="json")
    assert data["status"] == "failed"
    assert data["account"] == ACCOUNT.to_json()
    assert data["state_before"] == STATE.to_json()
    assert data["error"] == {"code": "rate_limited", "message": "slow down"}
    assert data["history"] == [_action().history[0].to_json()]
    assert data["requested_at"] == "2026-11-30T08:00:00Z"
    assert not {"error_code", "error_message", "parameters", "lease_owner"} & set(data)
    bare = ActionView.model_validate(_action(error_code=None, error_message=None, state_before=None,
                                             account=None, history=()))  # fmt: skip
    assert bare.error is None and bare.state_before is None and bare.account is None and bare.history == []


def test_bulk_plan_and_playbook_views() -> None:
    bulk = BulkView.model_validate(BulkRequest("b-1", [_action()]))
    assert bulk.batch_id == "b-1" and bulk.actions[0].id == 7
    item = PlanItem("okta.suspend_user", "okta", "alice", ACCOUNT.name, "status=ACTIVE", "would change")
    assert PlanItemView.model_validate(item).model_dump() == vars(item)
    run = PlaybookRun("contain", "alice", "b-2", [_action()], ["entra: no account"], [item])
    shown = PlaybookRunView.model_validate(run).model_dump(mode="json")
    assert shown["actions"][0]["error"]["code"] == "rate_limited"
    assert shown["skipped"] == ["entra: no account"] and shown["plan"] == [vars(item)]


def test_person_view_lists_each_account_with_state_and_allowed_action_ids() -> None:
    linked = LinkedAccount(ACCOUNT, STATE, None, [get_action("okta.suspend_user")])
    person = Person("alice", [linked, LinkedAccount(ACCOUNT, None, "down", [])], {"ad": "unreachable"})
    data = PersonView.model_validate(person).model_dump(mode="json")
    assert data["accounts"][0] == {
        "account": ACCOUNT.to_json(), "state": STATE.to_json(), "state_error": None, "linked_by": "",
        "allowed_actions": ["okta.suspend_user"],
    }  # fmt: skip
    assert data["accounts"][1]["state"] is None and data["unreachable"] == {"ad": "unreachable"}


def test_hunting_views() -> None:
    chart = Chart(ChartKind.PIECHART, "AccountName", ["n"], [])
    result = QueryResult(Language.KQL, ["AccountName", "n"], [["alice", 3]], False, 0.0123456, "SELECT 1",
                         column_types=["VARCHAR", "BIGINT"], chart=chart)  # fmt: skip
    data = QueryResultView.model_validate(result).model_dump(mode="json")
    assert data == {"language": "kql", "columns": ["AccountName", "n"], "rows": [["alice", 3]],
                    "truncated": False, "truncated_by": None, "elapsed_ms": 12.346,
                    "column_types": ["VARCHAR", "BIGINT"],
                    "chart": {"kind": "piechart", "x": "AccountName", "y": ["n"], "series": [], "title": None,
                              "xtitle": None, "ytitle": None, "mode": "default", "legend": True}}  # fmt: skip
    acted = ActOnResultsView.model_validate(ActOnResults(BulkRequest("b-3", [_action()]), ["alice"]))
    assert acted.batch_id == "b-3" and acted.targets == ["alice"] and acted.actions[0].id == 7
    saved = SavedQuery(1, "brute", "IdentityLogonEvents", "ana", "", AT)
    assert SavedQueryView.model_validate(saved).model_dump() == vars(saved)
    rule = DetectionRule(2, "spray", "q", "ana", 300.0, "ad.disable_user", "AccountName", True, None, "ana")
    assert DetectionRuleView.model_validate(rule).action == "ad.disable_user"
    ran = RuleRun("spray", 3, 1, "b-4")
    assert RuleRunView.model_validate(ran).model_dump() == vars(ran)
    alert = Alert(5, 2, {"AccountName": "alice"}, "alice", None, AT)
    assert AlertView.model_validate(alert).model_dump() == vars(alert)
    table = EventTableView.model_validate(EVENT_TABLES[0])
    assert table.description == EVENT_TABLES[0].doc
    assert [c.description for c in table.columns] == [c.doc for c in EVENT_TABLES[0].columns]


def test_audit_and_token_views() -> None:
    report = AuditReportView.model_validate(ChainReport(3, [Break(2, "edited")]))
    assert report.model_dump() == {
        "entries": 3, "ok": False, "breaks": [{"seq": 2, "problem": "edited"}],
        "anchored": False, "checkpoint": None, "warnings": [],
    }  # fmt: skip
    assert AuditReportView.model_validate(ChainReport(1, [])).ok
    issued = IssuedTokenView.model_validate(IssuedToken(4, "cdt_secret", None))
    assert issued.model_dump() == {"id": 4, "token": "cdt_secret", "expires_at": None}
    record = TokenRecord(4, 1, "ana", "cli", "cdt_ab", AT, None, None, AT)
    data = TokenView.model_validate(record).model_dump()
    assert data["user"] == "ana" and "user_id" not in data and data["last_used_at"] == AT


def test_views_import_nothing_above_them() -> None:
    """views/ reads domain types; it never imports the faces, the store, the database or the engine."""
    forbidden = ("api", "web", "cli", "store", "db", "engine")
    folder = Path(clampdown.views.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])  # fmt: skip
            for name in names:
                parts = name.split(".")
                inside = parts[0] == "clampdown" and len(parts) > 1
                assert not (inside and parts[1] in forbidden), (path, name)
