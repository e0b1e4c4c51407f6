"""Okta System Log events the lab emulator does not write yet (sign-ins, lockouts), mapped as
Okta documents them: a failed sign-in is a CloudSignInEvents row, a lockout a directory event."""

from __future__ import annotations

from datetime import UTC, datetime

from clampdown.hunting.cloud import okta_event_row

ACTOR = {"id": "00u1a2b3c4D5e6F7g8h9", "type": "User", "alternateId": "bob.nguyen@lab.example.test",
         "displayName": "Bob Nguyen"}  # fmt: skip


def _event(event_type: str, result: str, reason: str | None, **extra: object) -> dict[str, object]:
    return {
        "uuid": "7e9c1b2a-0f3d-11ef-9a2b-8f1c2d3e4f5a",
        "published": "2026-11-28T09:15:02.417Z",
        "eventType": event_type,
        "displayMessage": "User login to Okta",
        "actor": ACTOR,
        "client": {
            "userAgent": {
                "rawUserAgent": "Mozilla/5.0 (X11; Linux x86_64)",
                "os": "Linux",
                "browser": "FIREFOX",
            },
            "ipAddress": "198.51.100.23",
            "geographicalContext": {"city": "Lyon", "country": "France"},
        },
        "outcome": {"result": result, "reason": reason},
        "target": [],
        "transaction": {"type": "WEB", "id": "Zx1y2z3"},
        **extra,
    }


def test_a_failed_okta_sign_in_is_a_cloud_sign_in_row() -> None:
    mapped = okta_event_row(_event("user.session.start", "FAILURE", "INVALID_CREDENTIALS"))
    assert mapped is not None
    table, row = mapped
    assert table == "CloudSignInEvents"
    assert row["Timestamp"] == datetime(2026, 11, 28, 9, 15, 2, 417000, tzinfo=UTC)
    assert (row["Provider"], row["ActionType"], row["FailureReason"]) == (
        "okta",
        "LogonFailed",
        "INVALID_CREDENTIALS",
    )
    assert (row["AccountUpn"], row["AccountObjectId"]) == (ACTOR["alternateId"], ACTOR["id"])
    assert (row["IPAddress"], row["City"], row["Country"]) == ("198.51.100.23", "Lyon", "France")
    assert row["ReportId"] == "7e9c1b2a-0f3d-11ef-9a2b-8f1c2d3e4f5a"


def test_a_successful_sign_in_and_a_lockout() -> None:
    ok = okta_event_row(_event("user.session.start", "SUCCESS", None))
    assert ok is not None and ok[1]["ActionType"] == "LogonSuccess" and ok[1]["ErrorCode"] is None
    locked = okta_event_row(
        _event("user.account.lock", "SUCCESS", None, displayMessage="Max sign in attempts exceeded")
    )
    assert locked is not None
    table, row = locked
    assert (table, row["ActionType"], row["TargetAccountUpn"]) == (
        "IdentityDirectoryEvents", "Account locked out", ACTOR["alternateId"]
    )  # fmt: skip


def test_events_about_no_user_are_not_kept() -> None:
    assert okta_event_row(_event("system.org.rate_limit.warning", "SUCCESS", None)) is None
