"""Plain functions the AD tests share: binds as a user, reads back as Administrator."""

from __future__ import annotations

from typing import Any

import ldap3

from clampdown.model import ActionContext
from clampdown_lab.samba import SambaLab

USER_PASSWORD = "Test-User-Pw-4821!"


def read_attrs(admin: Any, dn: str, *names: str) -> dict[str, list[Any]]:
    """Attributes of `dn` read back as Administrator."""
    admin.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(names))
    return dict(admin.response[0]["attributes"])


def read_int(admin: Any, dn: str, name: str) -> int:
    values = read_attrs(admin, dn, name).get(name) or ["0"]
    return int(values[0])


def bind_as(lab: SambaLab, user: str, password: str) -> dict[str, Any]:
    """A simple bind as `user` over LDAPS: the bind result (49 with data 773 / 533 ...)."""
    directory = lab.directory
    host = directory.url.removeprefix("ldaps://").split(":")[0]
    tls = ldap3.Tls(validate=2, ca_certs_file=str(directory.ca_file))
    server = ldap3.Server(host, port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, user=user, password=password, raise_exceptions=False)
    conn.bind()
    result = dict(conn.result)
    conn.unbind()
    return result


class ScratchUser:
    """A throwaway user created for one test."""

    def __init__(self, ids: dict[str, str]) -> None:
        self.ids = ids
        self.dn = ids["dn"]
        self.sam = ids["sAMAccountName"]
        self.upn = ids["upn"]
        self.password = USER_PASSWORD


def context() -> ActionContext:
    return ActionContext(action_id=1, reason="test", requested_by="pytest")
