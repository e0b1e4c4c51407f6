"""Okta System Log and Entra ID sign-in logs, turned into event rows.

Okta events are pulled oldest first; each page is stored with the `next` link that follows it,
so a restart resumes at the first page not stored. Graph answers sign-ins newest first, so the
Entra cursor is a time watermark that moves only after a whole pull; a pull cut short is read
again from the old watermark and the rows already stored are skipped by their ReportId.
"""

from __future__ import annotations

from typing import Any

from clampdown.hunting.schema import CLOUD_SIGN_IN_EVENTS, IDENTITY_DIRECTORY_EVENTS
from clampdown.hunting.store import Row
from clampdown.hunting.windows import parse_time

# Okta event types that are a sign-in attempt; everything else with a user target is a change.
OKTA_SIGN_INS = frozenset(
    {
        "user.session.start",
        "user.authentication.sso",
        "user.authentication.auth_via_mfa",
        "user.authentication.verify",
        "policy.evaluate_sign_on",
    }
)
OKTA_LOCKOUT = "user.account.lock"


def _get(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def okta_event_row(event: dict[str, Any], source: str = "okta") -> tuple[str, Row] | None:
    """The table and row for one System Log event; None for events about no user. `source`: the
    configured Okta org it came from ([providers.NAME]), its Source and Directory."""
    event_type = str(event.get("eventType", ""))
    outcome = _get(event, "outcome", "result")
    targets = [t for t in event.get("target") or [] if isinstance(t, dict) and t.get("type") == "User"]
    base: Row = {
        "Timestamp": parse_time(str(event["published"])),
        "IPAddress": _get(event, "client", "ipAddress"),
        "Source": source,
        "Directory": source,
        "ReportId": str(event["uuid"]),
        "AdditionalFields": {"eventType": event_type, "outcome": event.get("outcome")},
    }
    actor = event.get("actor") or {}
    if event_type in OKTA_SIGN_INS:
        return CLOUD_SIGN_IN_EVENTS.name, base | {
            "Provider": "okta",
            "ActionType": "LogonSuccess" if outcome in ("SUCCESS", "ALLOW") else "LogonFailed",
            "Application": _get(event, "debugContext", "debugData", "appName") or "Okta",
            "ErrorCode": None if outcome in ("SUCCESS", "ALLOW") else str(outcome),
            "FailureReason": _get(event, "outcome", "reason"),
            "AccountUpn": actor.get("alternateId"),
            "AccountObjectId": actor.get("id"),
            "AccountDisplayName": actor.get("displayName"),
            "Country": _get(event, "client", "geographicalContext", "country"),
            "City": _get(event, "client", "geographicalContext", "city"),
            "UserAgent": _get(event, "client", "userAgent", "rawUserAgent"),
            "CorrelationId": _get(event, "transaction", "id"),
        }
    if not targets and event_type != OKTA_LOCKOUT:
        return None
    target = targets[0] if targets else actor
    return IDENTITY_DIRECTORY_EVENTS.name, base | {
        "ActionType": "Account locked out" if event_type == OKTA_LOCKOUT else event.get("displayMessage"),
        "Application": "Okta",
        "TargetAccountUpn": target.get("alternateId"),
        "TargetAccountName": target.get("displayName"),
        "TargetAccountObjectId": target.get("id"),
        "AccountUpn": actor.get("alternateId"),
        "AccountObjectId": actor.get("id"),
        "AccountDisplayName": actor.get("displayName"),
    }


def entra_sign_in_row(entry: dict[str, Any], source: str = "entra") -> Row:
    """The CloudSignInEvents row for one Graph signIn; `source` is the Entra tenant's section name,
    its Source and Directory."""
    code = _get(entry, "status", "errorCode")
    return {
        "Timestamp": parse_time(str(entry["createdDateTime"])),
        "Provider": "entra",
        "ActionType": "LogonSuccess" if code in (0, None) else "LogonFailed",
        "Application": entry.get("appDisplayName"),
        "ErrorCode": None if code is None else str(code),
        "FailureReason": _get(entry, "status", "failureReason"),
        "AccountUpn": entry.get("userPrincipalName"),
        "AccountObjectId": entry.get("userId"),
        "AccountDisplayName": entry.get("userDisplayName"),
        "IPAddress": entry.get("ipAddress"),
        "Country": _get(entry, "location", "countryOrRegion"),
        "City": _get(entry, "location", "city"),
        "UserAgent": _get(entry, "deviceDetail", "browser"),
        "ClientAppUsed": entry.get("clientAppUsed"),
        "RiskLevelDuringSignIn": entry.get("riskLevelDuringSignIn"),
        "ConditionalAccessStatus": entry.get("conditionalAccessStatus"),
        "CorrelationId": entry.get("correlationId"),
        "Source": source,
        "Directory": source,
        "ReportId": str(entry["id"]),
        "AdditionalFields": {
            "appId": entry.get("appId"),
            "isInteractive": entry.get("isInteractive"),
            "riskState": entry.get("riskState"),
            "operatingSystem": _get(entry, "deviceDetail", "operatingSystem"),
        },
    }
