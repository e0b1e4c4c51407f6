"""Which configured AD directory a domain controller's event belongs to.

Each `[providers.NAME]` of kind `ad` names its domain: the DNS domain its base DN is in
(DC=emea,DC=example,DC=test is emea.example.test), its NetBIOS name when `netbios_domain` is set,
and the host names of the domain controllers it lists. An event belongs to the directory whose
domain recorded it:

1. its computer (the DC's FQDN) is a DC host name a directory lists;
2. else, when the computer is a DNS name, the domain it is in (its name less the first label)
   is a directory's domain; a DC of a child domain is not its parent's, and a DC in no configured
   domain belongs to none;
3. else (a computer without a domain, `DC1`): a directory lists a DC of that short name, or the
   domains the event names (TargetDomainName, SubjectDomainName, a Kerberos realm) are one
   directory's DNS or NetBIOS domain.

Two directories matching (two sections over one domain, one short name in two forests) is never
settled by a guess: the event names no directory, and the ingest counts and logs it. The caller
who knows where a file came from names the directory instead (`ingest evtx --directory NAME`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from clampdown.connectors.ad.settings import ADSettings
from clampdown.connectors.base import Connector
from clampdown.connectors.instances import instances_of
from clampdown.errors import InvalidInput
from clampdown.hunting.windows import WindowsEvent

# Fields of a Security event that name a domain; 4740's TargetDomainName is the caller's computer.
_DOMAIN_FIELDS = ("TargetDomainName", "SubjectDomainName")
_NOT_A_DOMAIN = frozenset({"", "-", "nt authority", "builtin", "font driver host", "window manager"})


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _name(text: str) -> str:
    return text.strip().rstrip(".").lower()


def dns_domain(base_dn: str) -> str | None:
    """The DNS domain of a distinguished name: its DC= components (OU and CN ones ignored)."""
    labels = []
    for part in base_dn.split(","):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "dc" and value.strip():
            labels.append(value.strip())
    return ".".join(labels).lower() if labels else None


@dataclass(frozen=True)
class ADDomain:
    """One AD directory as its events name it: DNS domain, NetBIOS name, DC host names."""

    directory: str
    dns_domain: str | None
    netbios: str | None = None
    controllers: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, directory: str, settings: ADSettings) -> ADDomain:
        """The domain `[providers.<directory>]` configures."""
        hosts = (_name(s.host_name) for s in settings.servers)
        return cls(
            directory,
            dns_domain(settings.base_dn),
            _name(settings.netbios_domain) if settings.netbios_domain else None,
            frozenset(h for h in hosts if h and not _is_address(h)),
        )


@dataclass(frozen=True)
class Placement:
    """The directory an event belongs to; None with the candidates when several match (ambiguous)
    or none (an empty tuple)."""

    directory: str | None
    candidates: tuple[str, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return self.directory is None and len(self.candidates) > 1


_UNKNOWN = Placement(None)


def _placed(candidates: Iterable[str]) -> Placement:
    found = tuple(sorted(set(candidates)))
    if len(found) == 1:
        return Placement(found[0], found)
    return Placement(None, found)


@dataclass
class DirectoryMatcher:
    """Places Windows events in the configured AD directories (or all in `fixed`, when the caller
    named it); answers are kept per computer, so a large ingest matches each DC once."""

    domains: tuple[ADDomain, ...] = ()
    fixed: str | None = None
    _by_computer: dict[str, Placement] = field(default_factory=dict, repr=False)
    _accounts: dict[tuple[str | None, str | None], str | None] = field(default_factory=dict, repr=False)

    def account_directory(self, event_directory: str | None, domain: str | None) -> str | None:
        """The AD directory of an account an event names with `domain` (its TargetDomainName, a
        Kerberos realm): the one directory whose DNS or NetBIOS domain that is; with no domain
        named, the directory of the DC that recorded the event (a KDC's own accounts). None when
        the domain is a built-in one (NT AUTHORITY), names no configured directory (a trusted
        forest, or a NetBIOS name no `netbios_domain` configures) or several: a sAMAccountName
        is unique only within its domain, so its domain is never guessed."""
        key = (event_directory, domain)
        if key in self._accounts:
            return self._accounts[key]
        name = _name(domain or "")
        if name in ("", "-"):
            found = event_directory
        elif name in _NOT_A_DOMAIN:
            found = None
        else:
            found = _placed(d.directory for d in self.domains if name in (d.dns_domain, d.netbios)).directory
        self._accounts[key] = found
        return found

    def place(self, event: WindowsEvent) -> Placement:
        """The directory `event` belongs to, by the rules in the module's docstring."""
        if self.fixed is not None:
            return Placement(self.fixed, (self.fixed,))
        placed = self.place_computer(event.computer)
        return self._by_event_domains(event) if placed is None else placed

    def place_computer(self, name: str) -> Placement | None:
        """The directory of the domain controller `name`; None when its name alone cannot tell
        (a name without a domain that no directory lists)."""
        if self.fixed is not None:
            return Placement(self.fixed, (self.fixed,))
        if not self.domains:
            return _UNKNOWN
        computer = _name(name)
        known = self._by_computer.get(computer)
        if known is not None:
            return known
        placed = self._by_host(computer)
        if placed is None:
            if "." not in computer:
                return None
            suffix = computer.split(".", 1)[1]
            placed = _placed(d.directory for d in self.domains if d.dns_domain == suffix)
        self._by_computer[computer] = placed
        return placed

    def _by_host(self, computer: str) -> Placement | None:
        if not computer:
            return None
        if "." in computer:
            listed = [d.directory for d in self.domains if computer in d.controllers]
        else:
            short = {d.directory: {h.split(".")[0] for h in d.controllers} for d in self.domains}
            listed = [name for name, hosts in short.items() if computer in hosts]
        return _placed(listed) if listed else None

    def _by_event_domains(self, event: WindowsEvent) -> Placement:
        names = {_name(event.data.get(f) or "") for f in _DOMAIN_FIELDS}
        if event.event_id == 4740:
            names.discard(_name(event.data.get("TargetDomainName") or ""))
        realm = (event.data.get("TargetUserName") or "").partition("@")[2]
        names.add(_name(realm))
        names -= _NOT_A_DOMAIN
        return _placed(d.directory for d in self.domains for n in names if n in (d.dns_domain, d.netbios))


def ad_domains(connectors: Mapping[str, Connector]) -> tuple[ADDomain, ...]:
    """The domains of the configured AD directories whose settings name one."""
    found = []
    for name in instances_of(connectors, "ad"):
        settings = getattr(connectors[name], "settings", None)
        if isinstance(settings, ADSettings):
            found.append(ADDomain.from_settings(name, settings))
    return tuple(found)


def directory_matcher(connectors: Mapping[str, Connector], named: str | None = None) -> DirectoryMatcher:
    """The matcher for the configured AD directories; with `named`, every event is placed in that
    directory, which must be a configured AD one (InvalidInput naming those that are)."""
    if named is None:
        return DirectoryMatcher(ad_domains(connectors))
    names = instances_of(connectors, "ad")
    if named not in names:
        configured = ", ".join(names) or "none"
        raise InvalidInput(f"'{named}' is not a configured AD directory; configured: {configured}")
    return DirectoryMatcher(ad_domains(connectors), fixed=named)
