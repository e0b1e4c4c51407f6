"""The event tables, modelled on Microsoft's identity hunting schema; every timestamp is UTC.

Column names follow Microsoft Defender XDR's advanced hunting tables so that a hunt written
there reads the same here. `ReportId` is unique per source (an Okta event uuid, an Entra sign-in
id, `computer:record id` for Windows), and `AdditionalFields` keeps the source's other details
as JSON text. `Directory` names the configured directory a row belongs to; a user limited to
some directories sees their rows only. The columns after it say who the account is in every
configured directory, joined through IdentityInfo (hunting/enrichment.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str
    # A column added after files were made: the SQL expression that fills it in their rows.
    backfill: str | None = None


@dataclass(frozen=True)
class EventTable:
    name: str
    doc: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def ddl(self) -> str:
        cols = ", ".join(f'"{c.name}" {c.type}' for c in self.columns)
        return f'CREATE TABLE IF NOT EXISTS "{self.name}" ({cols})'


def _c(name: str, type_: str, doc: str, backfill: str | None = None) -> Column:
    return Column(name, type_, doc, backfill)


_ACTOR = (
    _c("AccountName", "VARCHAR", "sAMAccountName or login of the account"),
    _c("AccountDomain", "VARCHAR", "domain of the account"),
    _c("AccountUpn", "VARCHAR", "user principal name (or Okta login) of the account; from IdentityInfo where"
       " the event names none (IdentityFilled says so)"),
    _c("AccountSid", "VARCHAR", "on-premises security identifier of the account; from IdentityInfo where the"
       " event names none (IdentityFilled says so)"),
    _c("AccountObjectId", "VARCHAR", "the provider's id of the account (Entra object id, Okta user id)"),
    _c("AccountDisplayName", "VARCHAR", "display name of the account"),
)  # fmt: skip
_NETWORK = (
    _c("DeviceName", "VARCHAR", "the device the activity came from"),
    _c("IPAddress", "VARCHAR", "the IP address the activity came from"),
    _c("Port", "INTEGER", "the source TCP port"),
    _c("DestinationDeviceName", "VARCHAR", "the device (a domain controller, a service) that recorded it"),
    _c("DestinationIPAddress", "VARCHAR", "the IP address of that device"),
)
_DIRECTORY_DOC = (
    "the configured directory ([providers.NAME]) the row belongs to: the AD domain whose domain"
    " controller recorded it, the Okta org or Entra tenant it was pulled from; NULL when that cannot"
    " be told (then only users with access to every directory see the row)"
)
# The Source of events read from domain controllers' logs (files or Winlogbeat).
WINDOWS_SOURCES = ("evtx", "winlogbeat")
# Rows stored before the column existed: a pull's Source was already its directory's name, a
# Windows event's names none.
_DIRECTORY = _c(
    "Directory", "VARCHAR", _DIRECTORY_DOC,
    backfill=f"""CASE WHEN "Source" IN {WINDOWS_SOURCES!r} THEN NULL ELSE "Source" END""",
)  # fmt: skip
_TAIL = (
    _c("Source", "VARCHAR", "where the row came from: evtx, winlogbeat, or the name of the Okta org or Entra"
       " tenant it was pulled from"),
    _c("ReportId", "VARCHAR", "the event's unique id within its source"),
    _c("AdditionalFields", "VARCHAR", "other details as JSON text"),
    _DIRECTORY,
)  # fmt: skip


# Identity enrichment (issue 19): who the account is in every configured directory, joined through
# IdentityInfo on strong anchors (hunting/enrichment.py). These columns come after Directory, so a
# file made before them gains them at the end (filled at the next IdentityInfo refresh).
def _identity_ids(prefix: str, whose: str) -> tuple[Column, ...]:
    return (
        _c(f"{prefix}EntraObjectId", "VARCHAR", f"Entra ID object id of {whose}, where a configured tenant"
           " knows the account (the event's own id for an Entra sign-in)"),
        _c(f"{prefix}OktaId", "VARCHAR", f"Okta user id of {whose}, where a configured org knows the"
           " account (the event's own id for an Okta event)"),
    )  # fmt: skip


IDENTITY_FILLED = "IdentityFilled"
_IDENTITY_FILLED = _c(
    IDENTITY_FILLED, "VARCHAR", "the columns the event left empty and IdentityInfo filled (AccountUpn,"
    " AccountSid, TargetAccountUpn, TargetAccountSid; comma-separated); NULL when it filled none",
)  # fmt: skip

IDENTITY_LOGON_EVENTS = EventTable(
    "IdentityLogonEvents",
    "Authentication against on-premises Active Directory (Windows 4624, 4625, 4768, 4769, 4771).",
    (
        _c("Timestamp", "TIMESTAMPTZ", "when the event was recorded (UTC)"),
        _c("ActionType", "VARCHAR", "LogonSuccess or LogonFailed"),
        _c("LogonType", "VARCHAR", "Interactive, Network, RemoteInteractive, Kerberos TGT, ..."),
        _c("Protocol", "VARCHAR", "Kerberos or NTLM"),
        _c("FailureReason", "VARCHAR", "why a logon failed, in words"),
        _c("EventId", "INTEGER", "the Windows event id"),
        _c("Application", "VARCHAR", "Active Directory"),
        *_ACTOR,
        *_NETWORK,
        *_TAIL,
        *_identity_ids("Account", "the account"),
        _IDENTITY_FILLED,
    ),
)

IDENTITY_DIRECTORY_EVENTS = EventTable(
    "IdentityDirectoryEvents",
    "Changes to accounts: created, enabled, disabled, locked out, password reset, suspended.",
    (
        _c("Timestamp", "TIMESTAMPTZ", "when the event was recorded (UTC)"),
        _c("ActionType", "VARCHAR", "Account created, Account disabled, Account password reset, ..."),
        _c("EventId", "INTEGER", "the Windows event id (NULL for cloud events)"),
        _c("Application", "VARCHAR", "Active Directory, Okta or Microsoft Entra ID"),
        _c("TargetAccountUpn", "VARCHAR", "UPN (or login) of the account the action was applied to"),
        _c("TargetAccountName", "VARCHAR", "name of that account"),
        _c("TargetAccountSid", "VARCHAR", "SID of that account"),
        _c("TargetAccountObjectId", "VARCHAR", "the provider's id of that account"),
        *_ACTOR,
        *_NETWORK,
        *_TAIL,
        *_identity_ids("Account", "the account that acted"),
        *_identity_ids("TargetAccount", "the account the action was applied to"),
        _IDENTITY_FILLED,
    ),
)

CLOUD_SIGN_IN_EVENTS = EventTable(
    "CloudSignInEvents",
    "Interactive and non-interactive sign-ins to Okta and Microsoft Entra ID.",
    (
        _c("Timestamp", "TIMESTAMPTZ", "when the sign-in happened (UTC)"),
        _c("Provider", "VARCHAR", "okta or entra"),
        _c("ActionType", "VARCHAR", "LogonSuccess or LogonFailed"),
        _c("Application", "VARCHAR", "the application signed in to"),
        _c("ErrorCode", "VARCHAR", "the provider's error code (0 or empty when it succeeded)"),
        _c("FailureReason", "VARCHAR", "why it failed, in words"),
        _c("AccountUpn", "VARCHAR", "UPN or login"),
        _c("AccountObjectId", "VARCHAR", "the provider's id of the account"),
        _c("AccountDisplayName", "VARCHAR", "display name"),
        _c("IPAddress", "VARCHAR", "the client's IP address"),
        _c("Country", "VARCHAR", "the client's country, when known"),
        _c("City", "VARCHAR", "the client's city, when known"),
        _c("UserAgent", "VARCHAR", "the client's user agent"),
        _c("ClientAppUsed", "VARCHAR", "Browser, Mobile Apps, Exchange ActiveSync, ..."),
        _c("RiskLevelDuringSignIn", "VARCHAR", "none, low, medium, high"),
        _c("ConditionalAccessStatus", "VARCHAR", "success, failure, notApplied"),
        _c("CorrelationId", "VARCHAR", "the provider's correlation or transaction id"),
        *_TAIL,
        _c("AccountSid", "VARCHAR", "on-premises SID of the account, where a configured directory knows it"),
        *_identity_ids("Account", "the account"),
        _IDENTITY_FILLED,
    ),
)

IDENTITY_INFO = EventTable(
    "IdentityInfo",
    "One row per account per directory, the latest seen: who the account is and whether it is enabled.",
    (
        _c("Timestamp", "TIMESTAMPTZ", "when this row was last updated (UTC)"),
        _c("Provider", "VARCHAR", "ad, entra or okta"),
        _c("AccountObjectId", "VARCHAR", "the provider's immutable id"),
        _c("AccountUpn", "VARCHAR", "UPN or login"),
        _c("AccountName", "VARCHAR", "sAMAccountName or login"),
        _c("AccountDomain", "VARCHAR", "domain"),
        _c("OnPremSid", "VARCHAR", "on-premises SID"),
        _c("AccountDisplayName", "VARCHAR", "display name"),
        _c("IsAccountEnabled", "BOOLEAN", "enabled, as last seen (NULL: unknown)"),
        _c("AdditionalFields", "VARCHAR", "other details as JSON text"),
        _c(
            "Directory",
            "VARCHAR",
            "the configured directory ([providers.NAME]) the account was looked up"
            " in; NULL in rows written before directories were recorded",
        ),
    ),
)

SECURITY_SIGNALS = EventTable(
    "SecuritySignals",
    "Security Event Tokens received from Shared Signals transmitters (SSF 1.0: CAEP and RISC events),"
    " one row per event, its subject resolved to a person through strong anchors where it can be.",
    (
        _c("Timestamp", "TIMESTAMPTZ", "when it happened: its event_timestamp, else the SET's iat (UTC)"),
        _c("Transmitter", "VARCHAR", "the receiver ([ssf.receivers.NAME]) the SET came through"),
        _c("Issuer", "VARCHAR", "the SET's iss"),
        _c("EventType", "VARCHAR", "the event type URI, e.g. https://schemas.openid.net/secevent/risc/"
           "event-type/credential-compromise"),
        _c("EventName", "VARCHAR", "the event type's last part: credential-compromise, session-revoked, ..."),
        _c("SubjectFormat", "VARCHAR", "the sub_id format: email, iss_sub, opaque, phone_number, complex"),
        _c("SubjectEmail", "VARCHAR", "the subject's email (of the user, for a complex subject)"),
        _c("SubjectIssuer", "VARCHAR", "the iss of an iss_sub subject"),
        _c("SubjectSub", "VARCHAR", "the sub of an iss_sub subject"),
        _c("SubjectId", "VARCHAR", "the id of an opaque subject"),
        _c("SubjectPhone", "VARCHAR", "the phone number of a phone_number subject"),
        _c("Resolved", "BOOLEAN", "whether the subject was resolved to one person through strong anchors"),
        _c("ResolutionNote", "VARCHAR", "how the subject was resolved, or why it was not"),
        _c("AccountUpn", "VARCHAR", "UPN (or Okta login) of the person the subject resolved to"),
        _c("AccountObjectIds", "VARCHAR", "the person's accounts as directory:id, comma-separated"),
        _c("Txn", "VARCHAR", "the SET's txn: the same for SETs of one underlying cause"),
        _c("Source", "VARCHAR", "the receiver the SET came through"),
        _c("ReportId", "VARCHAR", "the SET's jti (with #n for the n-th of several events in one SET)"),
        _c("AdditionalFields", "VARCHAR", "the SET's claims as JSON text"),
        _c("Directory", "VARCHAR", "NULL: a signal spans directories (only users with access to every"
           " directory see it)"),
    ),
)  # fmt: skip

EVENT_TABLES: tuple[EventTable, ...] = (
    IDENTITY_LOGON_EVENTS,
    IDENTITY_DIRECTORY_EVENTS,
    CLOUD_SIGN_IN_EVENTS,
    IDENTITY_INFO,
    SECURITY_SIGNALS,
)
TABLES_BY_NAME = {t.name: t for t in EVENT_TABLES}

# Bookkeeping lives in its own schema, beside the events, so a cursor moves in the same
# transaction as the rows it covers: a crash leaves both or neither.
META_DDL = (
    "CREATE SCHEMA IF NOT EXISTS clampdown_meta",
    "CREATE TABLE IF NOT EXISTS clampdown_meta.cursors (source VARCHAR PRIMARY KEY, position VARCHAR,"
    " updated_at TIMESTAMPTZ)",
    "CREATE SEQUENCE IF NOT EXISTS clampdown_meta.ids",
    "CREATE TABLE IF NOT EXISTS clampdown_meta.saved_queries (id BIGINT PRIMARY KEY, name VARCHAR UNIQUE,"
    " query VARCHAR, owner VARCHAR, description VARCHAR, created_at TIMESTAMPTZ)",
    "CREATE TABLE IF NOT EXISTS clampdown_meta.rules (id BIGINT PRIMARY KEY, name VARCHAR UNIQUE,"
    " query VARCHAR, owner VARCHAR, interval_seconds DOUBLE, action_type VARCHAR, account_column VARCHAR,"
    " enabled BOOLEAN, last_run_at TIMESTAMPTZ, created_at TIMESTAMPTZ, armed_by VARCHAR)",
    # A rule acts as whoever last armed it (created or enabled it). A file made before that was
    # recorded gains the column, each rule armed by its owner, as such rules acted until then.
    "ALTER TABLE clampdown_meta.rules ADD COLUMN IF NOT EXISTS armed_by VARCHAR",
    "UPDATE clampdown_meta.rules SET armed_by = owner WHERE armed_by IS NULL",
    "CREATE TABLE IF NOT EXISTS clampdown_meta.alerts (id BIGINT PRIMARY KEY, rule_id BIGINT,"
    " row_hash VARCHAR, row_json VARCHAR, account VARCHAR, batch_id VARCHAR, raised_at TIMESTAMPTZ,"
    " UNIQUE (rule_id, row_hash))",
    # How each rule's last run ended (issue 15): the error that failed it, or the rows it alerted
    # on but could not act on and why; an alert keeps why its account was not acted on.
    "ALTER TABLE clampdown_meta.rules ADD COLUMN IF NOT EXISTS last_run_error VARCHAR",
    "ALTER TABLE clampdown_meta.rules ADD COLUMN IF NOT EXISTS last_run_skipped BIGINT DEFAULT 0",
    "ALTER TABLE clampdown_meta.rules ADD COLUMN IF NOT EXISTS last_run_note VARCHAR",
    "ALTER TABLE clampdown_meta.alerts ADD COLUMN IF NOT EXISTS skipped VARCHAR",
)
