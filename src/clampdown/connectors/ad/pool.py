"""A bounded pool of bound LDAP connections over TLS, with DC fail-over, run in worker threads.

ldap3 is blocking, so each operation runs in a thread of the pool's own executor with one
connection checked out for its duration; the executor's size bounds both threads and connections.
A connection the DC dropped is discarded and the operation runs once more on a fresh one (on the
next DC if this one is gone): operations are whole read-modify-write units, safe to repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ipaddress
import itertools
import logging
import os
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import ldap3  # type: ignore[import-untyped]
from ldap3.core import exceptions as ldap_exc  # type: ignore[import-untyped]

from clampdown.connectors.ad.failures import DROPPED, bind_failure
from clampdown.connectors.ad.settings import ADSettings, DomainController
from clampdown.errors import ActionAccountError, ConfigError, PermanentError, TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)
Connection = Any  # ldap3.Connection; ldap3 has no type information

_TLS_ERRORS = (ldap_exc.LDAPCertificateError, ldap_exc.LDAPStartTLSError, ssl.SSLError)
_pool_ids = itertools.count(1)


class DirectoryPool:
    """Bound connections to the configured DCs, lent to one blocking operation at a time."""

    def __init__(self, settings: ADSettings) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(settings.pool_size, thread_name_prefix="clampdown-ad")
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._preferred = 0  # the DC that answered last: new connections try it first
        self._closed = False
        # One in-memory Kerberos ticket cache per pool: the keytab is the only credential.
        self._ccache = f"MEMORY:clampdown-ad-{os.getpid()}-{next(_pool_ids)}"
        if not settings.verify_tls:
            log.warning(
                "AD: TLS certificates of the domain controllers are NOT verified (tls_verify = "
                "'%s'): anyone on the network path can impersonate the DC",
                settings.tls_verify,
            )
        if settings.bind == "kerberos" and importlib.util.find_spec("gssapi") is None:
            raise ConfigError(
                "bind = 'kerberos' needs the gssapi package: pip install 'clampdown[kerberos]' "
                "(it builds against libkrb5-dev)"
            )
        if settings.bind == "kerberos" and settings.krb5_config is not None:
            # MIT krb5 reads this at each context creation; there is no per-call setting.
            os.environ["KRB5_CONFIG"] = str(settings.krb5_config)

    @property
    def who(self) -> str:
        """The action account, as an analyst would name it."""
        return str(self.settings.bind_user or self.settings.principal)

    async def run(self, operation: Callable[[Connection], T]) -> T:
        """Run `operation(connection)` in a pool thread with a bound connection."""
        if self._closed:
            raise PermanentError("the AD connector is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_blocking, operation)

    def _run_blocking(self, operation: Callable[[Connection], T]) -> T:
        for attempt in (1, 2):
            # After a drop, idle connections to that DC are likely dead too: open a fresh one.
            conn = self._checkout() if attempt == 1 else self.open_connection()
            try:
                result = operation(conn)
            except DROPPED as exc:
                self._discard(conn)
                if attempt == 2:
                    raise TransientError(
                        f"the domain controller {conn.server.host} dropped the connection twice: {exc}"
                    ) from None
                continue
            except BaseException:
                self._checkin(conn)
                raise
            self._checkin(conn)
            return result
        raise AssertionError("unreachable")

    def _checkout(self) -> Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.open_connection()

    def _checkin(self, conn: Connection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        _unbind(conn)

    def _discard(self, conn: Connection) -> None:
        _unbind(conn)

    def open_connection(self) -> Connection:
        """A new bound connection, trying each DC in turn from the last one that answered."""
        servers = self.settings.servers
        order = [(self._preferred + i) % len(servers) for i in range(len(servers))]
        failures: list[str] = []
        tls_only = True
        for index in order:
            dc = servers[index]
            try:
                conn = self._bind(dc)
            except _TLS_ERRORS as exc:
                failures.append(f"{dc.url}: TLS verification failed ({exc})")
                continue
            except DROPPED as exc:
                tls_only = False
                failures.append(f"{dc.url}: {type(exc).__name__} {exc}")
                continue
            self._preferred = index
            return conn
        summary = "; ".join(failures)
        if tls_only:
            raise PermanentError(
                f"no domain controller passed the TLS check: {summary}. Set ca_file to the CA that "
                "signed the DCs' certificates and name each DC as its certificate does",
                code="tls",
            )
        raise TransientError(f"no domain controller answered: {summary}")

    def _bind(self, dc: DomainController) -> Connection:
        s = self.settings
        tls = ldap3.Tls(
            validate=ssl.CERT_REQUIRED if s.verify_tls else ssl.CERT_NONE,
            ca_certs_file=str(s.ca_file) if s.ca_file else None,
            # ldap3 would also accept the URL's host; the name is checked strictly in _verify_name.
            valid_names=["*"],
            sni=dc.host_name,
        )
        server = ldap3.Server(
            dc.host,
            port=dc.port,
            use_ssl=dc.use_ssl,
            tls=tls,
            get_info=ldap3.NONE,
            connect_timeout=s.timeout_seconds,
        )
        common: dict[str, Any] = {
            "receive_timeout": max(1, round(s.timeout_seconds)),  # ldap3 packs it as an integer
            "raise_exceptions": False,
            "auto_referrals": False,
            "return_empty_attributes": False,
        }
        if s.bind == "kerberos":
            conn = ldap3.Connection(
                server,
                user=s.principal,
                authentication=ldap3.SASL,
                sasl_mechanism=ldap3.KERBEROS,
                sasl_credentials=(dc.host_name,),
                cred_store={"client_keytab": str(s.keytab), "ccache": self._ccache},
                **common,
            )
        else:
            password = s.bind_password.get_secret_value() if s.bind_password else ""
            conn = ldap3.Connection(server, user=s.bind_user, password=password, **common)
        conn.open()
        if not dc.use_ssl:
            conn.start_tls()  # never bind in clear text: StartTLS first, verified like LDAPS
        if s.verify_tls:
            _verify_name(conn, dc.host_name)
        try:
            bound = conn.bind()
        except Exception as exc:  # gssapi raises its own errors for a bad keytab or realm
            _unbind(conn)
            if isinstance(exc, DROPPED + _TLS_ERRORS):
                raise
            raise ActionAccountError(
                f"the action account {self.who} cannot bind to {dc.url} with Kerberos: {exc}. Check "
                f"that {s.keytab} holds keys for {s.principal} (klist -kt), that krb5_config names "
                f"the KDC, and that the DC's SPN is ldap/{dc.host_name}"
            ) from None
        if not bound:
            result = dict(conn.result)
            _unbind(conn)
            raise bind_failure(result, self.who, dc.url)
        return conn

    async def aclose(self) -> None:
        """Unbind every idle connection and stop the threads."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            _unbind(conn)
        self._executor.shutdown(wait=False, cancel_futures=True)


def _verify_name(conn: Connection, expected: str) -> None:
    """The verified certificate must name the DC as configured; ssl.CertificateError otherwise."""
    cert = conn.socket.getpeercert()
    if not cert or not certificate_names(cert, expected):
        _unbind(conn)
        raise ssl.CertificateError(f"the certificate does not name {expected}")


def certificate_names(cert: dict[str, Any], expected: str) -> bool:
    """Whether a peer certificate (ssl's dict form) is valid for host name or address `expected`."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(expected)
    except ValueError:
        address = None
    alt_names = cert.get("subjectAltName", ())
    for kind, value in alt_names:
        if address is not None and kind == "IP Address" and ipaddress.ip_address(value.strip()) == address:
            return True
        if address is None and kind == "DNS" and _dns_name_matches(value, expected):
            return True
    if address is None and not any(kind == "DNS" for kind, _ in alt_names):
        # Certificates without DNS names (Samba's self-signed one) name the host in the CN.
        for rdn in cert.get("subject", ()):
            if any(key == "commonName" and _dns_name_matches(value, expected) for key, value in rdn):
                return True
    return False


def _dns_name_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):  # a wildcard covers exactly one left-most label
        return "." in host and host.split(".", 1)[1] == pattern[2:]
    return pattern == host


def _unbind(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # closing a dead socket: nothing left to release
        conn.unbind()
