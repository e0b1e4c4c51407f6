"""`clampdown doctor ad`: what the action account can do, per OU or sample user, before anything runs.

For an OU the DACL's inheritable ACEs are evaluated for the account's token (its SID and
tokenGroups); for a sample user the DC's own verdict (`allowedAttributesEffective`) is used for
the attributes, and the user's DACL for the Reset Password extended right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import ldap3  # type: ignore[import-untyped]
from ldap3.protocol.microsoft import security_descriptor_control  # type: ignore[import-untyped]

from clampdown.catalog import all_actions
from clampdown.connectors.ad import privileged
from clampdown.connectors.ad.connector import ADConnector
from clampdown.connectors.ad.failures import SUCCESS, operation_failure
from clampdown.connectors.ad.pool import Connection
from clampdown.connectors.ad.references import (
    escape_filter_value,
    sid_from_bytes,
    user_query,
)
from clampdown.connectors.ad.security_descriptor import (
    RIGHT_DS_CONTROL_ACCESS,
    RIGHT_DS_WRITE_PROP,
    has_right,
    inherits_right,
    parse_dacl,
)
from clampdown.errors import AccountNotFound, ClampdownError

USER_CLASS = "bf967aba-0de6-11d0-a285-00aa003049e2"
# userAccountControl and pwdLastSet belong to this property set: WP on it covers both.
USER_ACCOUNT_RESTRICTIONS = "4c164200-20c0-11d0-a768-00aa006e0529"
_EVERYONE, _AUTHENTICATED_USERS = "S-1-1-0", "S-1-5-11"
_DACL_ONLY = security_descriptor_control(sdflags=0x04)  # owner, group and SACL need more rights


@dataclass(frozen=True)
class Right:
    """A right on user objects one or more AD actions need."""

    title: str
    mask: int
    guids: tuple[str, ...]  # the right itself, then what else covers it (its property set)
    attribute: str | None  # the attribute it lets the account write, for allowedAttributesEffective
    dsacls: str  # the grant in `dsacls ... /G` syntax, minus the trustee

    def sddl(self, sid: str) -> str:
        kind = "WP" if self.mask == RIGHT_DS_WRITE_PROP else "CR"
        return f"(OA;CIIO;{kind};{self.guids[0]};{USER_CLASS};{sid})"


WRITE_UAC = Right(
    "Write userAccountControl",
    RIGHT_DS_WRITE_PROP,
    ("bf967a68-0de6-11d0-a285-00aa003049e2", USER_ACCOUNT_RESTRICTIONS),
    "userAccountControl",
    "WP;userAccountControl;user",
)
WRITE_PWDLASTSET = Right(
    "Write pwdLastSet",
    RIGHT_DS_WRITE_PROP,
    ("bf967a0a-0de6-11d0-a285-00aa003049e2", USER_ACCOUNT_RESTRICTIONS),
    "pwdLastSet",
    "WP;pwdLastSet;user",
)
RESET_PASSWORD = Right(
    "Reset Password (extended right)",
    RIGHT_DS_CONTROL_ACCESS,
    ("00299570-246d-11d0-a768-00aa006e0529",),
    None,
    "CA;Reset Password;user",
)


@dataclass(frozen=True)
class ActionCheck:
    """Whether the action account can perform one catalog action on the target."""

    action: str
    allowed: bool
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetReport:
    """The checks on one OU or sample user, and the delegation that would fix what is missing."""

    target: str
    kind: Literal["ou", "user", "group"]
    actions: tuple[ActionCheck, ...] = ()
    notes: tuple[str, ...] = ()
    grants: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(a.allowed for a in self.actions)


@dataclass(frozen=True)
class ADDoctorReport:
    """Everything `clampdown doctor ad` prints; `ok` is the exit status."""

    action_account: str
    account_dn: str | None = None
    account_sid: str | None = None
    targets: tuple[TargetReport, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(t.ok for t in self.targets)

    def lines(self) -> list[str]:
        """The report as text, one finding a line."""
        out = [f"action account: {self.action_account} ({self.account_dn or '?'}, {self.account_sid or '?'})"]
        if self.error:
            return [*out, f"  ERROR {self.error}"]
        for target in self.targets:
            out.append(f"{target.kind} {target.target}: {'OK' if target.ok else 'MISSING RIGHTS'}")
            if target.error:
                out.append(f"  ERROR {target.error}")
            for check in target.actions:
                verdict = "ok" if check.allowed else "missing " + ", ".join(check.missing)
                out.append(f"  {check.action:<26} {verdict}")
            out.extend(f"  note: {note}" for note in target.notes)
            if target.grants:
                out.append("  grant (Windows, then Samba):")
                out.extend(f"    {grant}" for grant in target.grants)
        return out


# These change the groups' `member`, not the user: checked per privileged group (_check_groups).
GROUP_METHODS = frozenset({"remove_privileged_groups", "restore_privileged_groups"})
MEMBER_ATTRIBUTE = "bf9679c0-0de6-11d0-a285-00aa003049e2"  # schemaIDGUID of `member`


def required_rights(method: str, set_random_password: bool) -> list[Right]:
    """The rights a catalog method needs on the user object. The reset and its undo write
    userAccountControl too, for users with DONT_EXPIRE_PASSWORD (cleared, then set again)."""
    if method in ("disable_user", "enable_user"):
        return [WRITE_UAC]
    if method == "force_password_reset":
        base = [WRITE_PWDLASTSET, WRITE_UAC]
        return [*base, RESET_PASSWORD] if set_random_password else base
    if method == "clear_password_reset":
        return [WRITE_PWDLASTSET, WRITE_UAC]
    return []


async def diagnose_ad(
    connector: ADConnector,
    ous: Sequence[str] = (),
    users: Sequence[str] = (),
    groups: bool | None = None,
) -> ADDoctorReport:
    """Check each OU (default: the configured managed_ous, else base_dn), each sample user and
    (`groups`; default: when no OU or user is named) each privileged group's `member`."""
    settings = connector.settings
    targets_ous = list(ous) or ([] if users else list(settings.managed_ous) or [settings.base_dn])
    with_groups = groups if groups is not None else not (ous or users)
    who = connector.pool.who
    try:
        return await connector.pool.run(
            lambda conn: _diagnose(conn, connector, targets_ous, list(users), with_groups)
        )
    except ClampdownError as exc:
        return ADDoctorReport(action_account=who, error=exc.message)


def _diagnose(
    conn: Connection, connector: ADConnector, ous: list[str], users: list[str], groups: bool
) -> ADDoctorReport:
    settings = connector.settings
    dn, sid, token = _action_account(conn, connector)
    trustee = f"{settings.netbios_domain or 'DOMAIN'}\\{_account_name(connector)}"
    reports = [_check_ou(conn, ou, token, connector, sid, trustee) for ou in ous]
    reports += [_check_user(conn, ref, token, connector, sid, trustee) for ref in users]
    if groups:
        reports += _check_groups(conn, connector, sid, trustee)
    return ADDoctorReport(connector.pool.who, dn, sid, tuple(reports))


def _check_groups(conn: Connection, connector: ADConnector, sid: str, trustee: str) -> list[TargetReport]:
    """Whether the action account may write `member` of each privileged group (the DC's own
    verdict, allowedAttributesEffective), and the grant that would let it."""
    s = connector.settings
    try:
        domain = privileged.read_domain(conn)
        specs = list(s.privileged_groups)
        groups = privileged.privileged_groups(conn, domain, specs, s.privileged_admin_count_groups)
    except ClampdownError as exc:
        return [TargetReport("privileged groups", "group", error=exc.message)]
    holder = f"CN=AdminSDHolder,CN=System,{domain.naming}"
    reports = []
    for group in groups:
        wanted = ["allowedAttributesEffective", "adminCount"]
        conn.search(group.dn, "(objectClass=*)", ldap3.BASE, attributes=wanted)
        entry = conn.response[0]["attributes"] if conn.result["result"] == SUCCESS and conn.response else {}
        writable = "member" in {a.lower() for a in entry.get("allowedAttributesEffective", [])}
        protected = bool(int((entry.get("adminCount") or ["0"])[0]))
        checks = tuple(
            ActionCheck(a.id, writable, () if writable else ("Write member",))
            for a in all_actions()
            if a.provider == connector.provider and a.method in GROUP_METHODS
        )
        notes: tuple[str, ...] = ()
        grant_on = group.dn
        if protected:
            grant_on = holder
            notes = (
                "adminCount=1: SDProp resets this group's ACL from AdminSDHolder every hour, so the "
                "grant belongs on AdminSDHolder (it then covers every protected group).",
            )
        notes += ("Whoever may write member of a privileged group may add itself to it: this right "
                  "makes the action account as privileged as the group.",)
        grants: tuple[str, ...] = ()
        if not writable:
            grants = (
                f'dsacls "{grant_on}" /G "{trustee}:WP;member"',
                f'samba-tool dsacl set --objectdn="{grant_on}" --sddl="(OA;;WP;{MEMBER_ATTRIBUTE};;{sid})"',
            )
        reports.append(TargetReport(group.dn, "group", checks, notes, grants))
    return reports


def _account_name(connector: ADConnector) -> str:
    s = connector.settings
    name = str(s.bind_user if s.bind == "simple" else s.principal)
    return name.split("@")[0] if "=" not in name else ldap3.utils.dn.parse_dn(name)[0][1]


def _action_account(conn: Connection, connector: ADConnector) -> tuple[str, str, set[str]]:
    """The action account's DN, SID and token (its SID, its groups', Everyone, Authenticated Users)."""
    s = connector.settings
    name = str(s.bind_user if s.bind == "simple" else s.principal)
    if "=" in name:
        base, scope, flt = name, ldap3.BASE, "(objectClass=*)"
    else:
        sam = escape_filter_value(name.split("@")[0])
        upn = escape_filter_value(name)
        base, scope, flt = s.base_dn, ldap3.SUBTREE, f"(|(userPrincipalName={upn})(sAMAccountName={sam}))"
    conn.search(base, flt, scope, attributes=["objectSid"], size_limit=1)
    found = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
    if not found:
        raise AccountNotFound(f"the action account {name} is not found under {base}")
    dn = found[0]["dn"]
    sid = sid_from_bytes(found[0]["raw_attributes"]["objectSid"][0])
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["tokenGroups"])
    groups = conn.response[0]["raw_attributes"].get("tokenGroups", []) if conn.response else []
    return dn, sid, {sid, _EVERYONE, _AUTHENTICATED_USERS, *(sid_from_bytes(g) for g in groups)}


def _read_dacl(conn: Connection, dn: str, extra: list[str]) -> tuple[dict[str, Any], list[Any]]:
    conn.search(
        dn, "(objectClass=*)", ldap3.BASE, attributes=["nTSecurityDescriptor", *extra], controls=_DACL_ONLY
    )
    if conn.result["result"] != SUCCESS or not conn.response:
        raise operation_failure(conn.result, "read the security descriptor", dn)
    entry = conn.response[0]
    raw = entry["raw_attributes"].get("nTSecurityDescriptor")
    return entry, parse_dacl(raw[0]) if raw else []


def _report(
    target: str,
    kind: Literal["ou", "user"],
    granted: dict[Right, bool],
    connector: ADConnector,
    sid: str,
    trustee: str,
    grant_on: str | None,
    notes: tuple[str, ...] = (),
) -> TargetReport:
    checks = []
    lacking: list[Right] = []  # only what some action needs: least privilege, nothing more
    for action in all_actions():
        if action.provider != connector.provider or action.method in GROUP_METHODS:
            continue
        rights = required_rights(action.method, connector.settings.set_random_password)
        missing = [r for r in rights if not granted[r]]
        lacking += [r for r in missing if r not in lacking]
        checks.append(ActionCheck(action.id, not missing, tuple(r.title for r in missing)))
    grants: tuple[str, ...] = ()
    if lacking and grant_on is not None:
        grants = tuple(f'dsacls "{grant_on}" /I:S /G "{trustee}:{r.dsacls}"' for r in lacking)
        sddl = "".join(r.sddl(sid) for r in lacking)
        grants += (f'samba-tool dsacl set --objectdn="{grant_on}" --sddl="{sddl}"',)
    if not connector.settings.set_random_password and not granted[RESET_PASSWORD]:
        notes += ("Reset Password is only needed with set_random_password, which is off.",)
    return TargetReport(target, kind, tuple(checks), notes, grants)


def _check_ou(
    conn: Connection, ou: str, token: set[str], connector: ADConnector, sid: str, trustee: str
) -> TargetReport:
    try:
        _, aces = _read_dacl(conn, ou, [])
    except ClampdownError as exc:
        return TargetReport(ou, "ou", error=exc.message)
    granted = {
        r: inherits_right(aces, token, r.mask, r.guids, USER_CLASS)
        for r in (WRITE_UAC, WRITE_PWDLASTSET, RESET_PASSWORD)
    }
    note = ("Users with adminCount=1 (AdminSDHolder-protected) in this OU do not inherit these rights.",)
    return _report(ou, "ou", granted, connector, sid, trustee, ou, note)


def _check_user(
    conn: Connection, reference: str, token: set[str], connector: ADConnector, sid: str, trustee: str
) -> TargetReport:
    try:
        query = user_query(reference, connector.settings.netbios_domain)
        conn.search(
            connector.settings.base_dn, query.ldap_filter, ldap3.SUBTREE, attributes=["cn"], size_limit=1
        )
        found = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        if not found:
            raise AccountNotFound(f"no user with {query.described}")
        dn = found[0]["dn"]
        entry, aces = _read_dacl(conn, dn, ["allowedAttributesEffective", "adminCount"])
    except (ClampdownError, ValueError) as exc:
        return TargetReport(reference, "user", error=str(exc))
    writable = {a.lower() for a in entry["attributes"].get("allowedAttributesEffective", [])}
    granted = {
        WRITE_UAC: "useraccountcontrol" in writable,
        WRITE_PWDLASTSET: "pwdlastset" in writable,
        RESET_PASSWORD: has_right(aces, token, RESET_PASSWORD.mask, RESET_PASSWORD.guids),
    }
    notes: tuple[str, ...] = ()
    parent: str | None = ",".join(ldap3.utils.dn.to_dn(dn)[1:])  # the OU to delegate on
    if int((entry["attributes"].get("adminCount") or ["0"])[0]):
        notes = (
            "adminCount=1: AdminSDHolder resets this user's ACL every hour, so OU delegation does "
            "not apply; a privileged administrator must act on it.",
        )
        parent = None  # no delegation on its OU would help
    return _report(dn, "user", granted, connector, sid, trustee, parent, notes)
