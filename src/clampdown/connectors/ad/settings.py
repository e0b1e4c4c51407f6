"""The `[providers.ad]` settings: domain controllers, TLS trust, the action account and its bind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from clampdown.config import Secret

# Domain Admins, Schema Admins, Enterprise Admins, Group Policy Creator Owners (RIDs in the
# domain's SID); Administrators, Account / Server / Print / Backup Operators (BUILTIN SIDs);
# DnsAdmins has no well-known RID (it is made when DNS is installed), so it is found by name.
DEFAULT_PRIVILEGED_GROUPS: tuple[str, ...] = (
    "RID:512",
    "RID:518",
    "RID:519",
    "RID:520",
    "S-1-5-32-544",
    "S-1-5-32-548",
    "S-1-5-32-549",
    "S-1-5-32-550",
    "S-1-5-32-551",
    "DnsAdmins",
)

# The only accepted spelling for turning certificate checks off, so nobody does it by accident.
UNSAFE_NO_TLS_VERIFY = "UNSAFE-do-not-verify-the-domain-controller"


class DomainController(BaseModel):
    """One DC: `ldaps://host:636` (TLS from the start) or `ldap://host:389` (StartTLS before bind)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    # The DC's DNS name when `url` holds an address: checked against its certificate and used
    # for the Kerberos service principal ldap/<name>.
    name: str | None = None

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError("a domain controller is 'ldaps://host[:636]' or 'ldap://host[:389]' (StartTLS)")
        if parts.path not in ("", "/"):
            raise ValueError("a domain controller URL has no path")
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def use_ssl(self) -> bool:
        return urlsplit(self.url).scheme == "ldaps"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (636 if self.use_ssl else 389)

    @property
    def host_name(self) -> str:
        return self.name or self.host


def _as_controller(value: object) -> object:
    return {"url": value} if isinstance(value, str) else value


class ADSettings(BaseModel):
    """One Active Directory domain, reached through one delegated action account."""

    model_config = ConfigDict(extra="forbid")

    servers: list[Annotated[DomainController, BeforeValidator(_as_controller)]] = Field(min_length=1)
    base_dn: str  # where users are searched: the domain, or the OU subtree Clampdown may act on
    netbios_domain: str | None = None  # accepts DOMAIN\name references for this domain only
    ca_file: Path | None = None  # the CA that signed the DCs' certificates; default: the system store
    tls_verify: Literal["verify", "UNSAFE-do-not-verify-the-domain-controller"] = "verify"

    bind: Literal["simple", "kerberos"] = "simple"
    bind_user: str | None = None  # simple bind: UPN (svc@example.com) or DN of the action account
    bind_password: Secret | None = None
    principal: str | None = None  # kerberos: the action account's principal, svc@REALM
    keytab: Path | None = None  # kerberos: the keytab holding its keys (exported, or a gMSA's)
    krb5_config: Path | None = None  # kerberos: krb5.conf to use instead of /etc/krb5.conf

    pool_size: int = Field(8, ge=1, le=64)  # connections (and threads) per connector
    timeout_seconds: float = Field(10.0, gt=0)

    # force_password_reset also sets a new random password (the attacker's one stops working).
    set_random_password: bool = False
    # Hand that password to the requester once: sealed to a one-time key the API and CLI give
    # them when they ask (never stored or logged in the clear); off: nobody ever sees it.
    hand_new_password_to_caller: bool = False
    # OUs the action account is meant to act on; `clampdown doctor ad` checks each.
    managed_ous: list[str] = Field(default_factory=list)

    # The groups ad.remove_privileged_groups takes a user out of: SIDs (S-1-5-32-544), RIDs in the
    # domain's SID (RID:512), DNs or sAMAccountNames; groups nested into them count too.
    privileged_groups: list[str] = Field(default_factory=lambda: list(DEFAULT_PRIVILEGED_GROUPS))
    # Also every group with adminCount=1 (what SDProp marks protected, nested ones included).
    privileged_admin_count_groups: bool = True
    # A local copy or mount of the DCs' SYSVOL share (the folder holding <domain>/Policies): the
    # Default Domain Policy's [Kerberos Policy] is read there. None: Windows' defaults are assumed.
    sysvol_path: Path | None = None

    @model_validator(mode="after")
    def _bind_complete(self) -> ADSettings:
        if self.bind == "simple" and (not self.bind_user or self.bind_password is None):
            raise ValueError("bind = 'simple' needs bind_user and bind_password")
        if self.bind == "kerberos" and (not self.principal or not self.keytab):
            raise ValueError("bind = 'kerberos' needs principal and keytab")
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file} does not exist")
        if self.sysvol_path is not None and not self.sysvol_path.is_dir():
            raise ValueError(f"sysvol_path {self.sysvol_path} is not a directory")
        if self.keytab is not None and not self.keytab.is_file():
            raise ValueError(f"keytab {self.keytab} does not exist")
        return self

    @property
    def verify_tls(self) -> bool:
        return self.tls_verify != UNSAFE_NO_TLS_VERIFY
