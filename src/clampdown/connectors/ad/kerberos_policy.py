"""The domain's Kerberos ticket policy, and how long tickets issued before a disable stay valid.

AD keeps the policy in no LDAP attribute: it is the [Kerberos Policy] section of the Default
Domain Policy GPO's GptTmpl.inf in SYSVOL (MaxTicketAge in hours, MaxRenewAge in days,
MaxServiceAge in minutes). The GPO is found over LDAP (gPCFileSysPath) and its file read from
`sysvol_path`, a local copy or mount of the SYSVOL share. Windows' KDC applies that policy; Samba's
applies it only where samba-gpupdate maps it onto `kdc:user ticket lifetime` and friends (its
defaults, 10 hours and 7 days, equal Windows').

Disabling an account stops new tickets, not the ones already issued: a ticket-granting ticket
issued just before the disable, and the service tickets got with it, last up to MaxTicketAge
after it. (Windows' KDC also re-checks the account on renewal and on service-ticket requests with
a TGT older than 20 minutes, so the bound given is the safe upper one.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PureWindowsPath

import ldap3  # type: ignore[import-untyped]

from clampdown.connectors.ad.failures import NO_SUCH_OBJECT, SUCCESS, operation_failure
from clampdown.connectors.ad.pool import Connection

DEFAULT_DOMAIN_POLICY = "{31B2F340-016D-11D2-945F-00C04FB984F9}"  # the same GUID in every domain
GPTTMPL = ("MACHINE", "Microsoft", "Windows NT", "SecEdit", "GptTmpl.inf")
# Windows' defaults, used when nothing is configured or the GPO does not say.
DEFAULT_MAX_TICKET_AGE = timedelta(hours=10)
DEFAULT_MAX_RENEW_AGE = timedelta(days=7)
DEFAULT_MAX_SERVICE_AGE = timedelta(minutes=600)


@dataclass(frozen=True)
class KerberosTicketPolicy:
    """Ticket lifetimes, and where they were read (a file, or "Windows defaults ...")."""

    max_ticket_age: timedelta
    max_renew_age: timedelta
    max_service_age: timedelta
    source: str


@dataclass(frozen=True)
class ResidualKerberosAccess:
    """How long an account's Kerberos tickets outlive its disable."""

    policy: KerberosTicketPolicy
    disabled_at: datetime
    tickets_valid_until: datetime
    renewable_until: datetime
    last_logon_at: str | None  # on the DC read (lastLogon is not replicated), else lastLogonTimestamp
    password_last_set_at: str | None

    @property
    def message(self) -> str:
        hours = self.policy.max_ticket_age / timedelta(hours=1)
        text = (
            f"Kerberos tickets issued before the disable stay valid until "
            f"{self.tickets_valid_until.isoformat(timespec='seconds')} "
            f"(maximum ticket lifetime {hours:g} h, {self.policy.source})"
        )
        if self.last_logon_at:
            text += f"; last logon seen {self.last_logon_at}"
        if self.password_last_set_at:
            text += f"; password last set {self.password_last_set_at} (a new password ends no ticket)"
        return text


def parse_kerberos_policy(text: str) -> dict[str, int]:
    """The integer keys of the [Kerberos Policy] section of a GptTmpl.inf."""
    found: dict[str, int] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
        elif section == "kerberos policy" and "=" in line:
            key, _, value = line.partition("=")
            try:
                found[key.strip().lower()] = int(value.strip())
            except ValueError:
                continue
    return found


def read_ticket_policy(conn: Connection, naming: str, sysvol: Path | None) -> KerberosTicketPolicy:
    """The Default Domain Policy's Kerberos section, read from `sysvol`; Windows' defaults where
    it is not configured or does not say."""
    if sysvol is None:
        return _defaults("Windows defaults: sysvol_path is not configured, no policy was read")
    gpo = f"CN={DEFAULT_DOMAIN_POLICY},CN=Policies,CN=System,{naming}"
    conn.search(gpo, "(objectClass=groupPolicyContainer)", ldap3.BASE, attributes=["gPCFileSysPath"])
    if conn.result["result"] == NO_SUCH_OBJECT or (conn.result["result"] == SUCCESS and not conn.response):
        return _defaults(f"Windows defaults: the domain has no Default Domain Policy ({gpo})")
    if conn.result["result"] != SUCCESS:
        raise operation_failure(conn.result, "read the Default Domain Policy", gpo)
    unc = conn.response[0]["attributes"].get("gPCFileSysPath")
    unc = str(unc[0] if isinstance(unc, list) else unc or "")
    # \\server\sysvol\<domain>\Policies\{GUID}: the part after the share names the folder.
    parts = PureWindowsPath(unc).parts[1:] if unc else ()
    path = _find(sysvol, [*parts, *GPTTMPL]) if parts else None
    if path is None:
        return _defaults(f"Windows defaults: {'/'.join((*parts, *GPTTMPL))} is not under {sysvol}")
    raw = path.read_bytes()
    text = raw.decode("utf-16") if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else raw.decode("utf-8-sig")
    keys = parse_kerberos_policy(text)
    if not keys:
        return _defaults(f"Windows defaults: {path} has no [Kerberos Policy]")
    return KerberosTicketPolicy(
        max_ticket_age=timedelta(hours=keys.get("maxticketage", 10)),
        max_renew_age=timedelta(days=keys.get("maxrenewage", 7)),
        max_service_age=timedelta(minutes=keys.get("maxserviceage", 600)),
        source=f"the Default Domain Policy, {path}",
    )


def residual_access(
    policy: KerberosTicketPolicy,
    disabled_at: datetime,
    last_logon_at: str | None,
    password_last_set_at: str | None,
) -> ResidualKerberosAccess:
    """The safe upper bound: a TGT issued at the last moment before `disabled_at` lives MaxTicketAge."""
    return ResidualKerberosAccess(
        policy=policy,
        disabled_at=disabled_at,
        tickets_valid_until=disabled_at + policy.max_ticket_age,
        renewable_until=disabled_at + policy.max_renew_age,
        last_logon_at=last_logon_at,
        password_last_set_at=password_last_set_at,
    )


def _defaults(source: str) -> KerberosTicketPolicy:
    ages = (DEFAULT_MAX_TICKET_AGE, DEFAULT_MAX_RENEW_AGE, DEFAULT_MAX_SERVICE_AGE)
    return KerberosTicketPolicy(*ages, source)


def _find(root: Path, parts: list[str]) -> Path | None:
    """`root` joined with `parts`, each matched without regard to case (SYSVOL comes from Windows)."""
    here = root
    for part in parts:
        exact = here / part
        if exact.exists():
            here = exact
            continue
        if not here.is_dir():
            return None
        match = next((p for p in here.iterdir() if p.name.lower() == part.lower()), None)
        if match is None:
            return None
        here = match
    return here if here.is_file() else None
