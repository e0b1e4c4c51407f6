"""The demo people who exist in every lab provider (AD, Entra ID, Okta), and the lab's domains:
LAB, the one `clampdown lab up` always starts, and EMEA, the second directory of each kind that
`clampdown lab up --second` adds (people migrated from LAB, a look-alike, people of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LAB_REALM = "LAB.EXAMPLE.TEST"
LAB_DOMAIN = "lab.example.test"  # UPN suffix, Okta login domain and Entra verified domain
LAB_NETBIOS = "LAB"


@dataclass(frozen=True)
class DemoPerson:
    """One person's account; `username` is the sAMAccountName, `upn` the login everywhere."""

    username: str
    given_name: str
    surname: str
    department: str
    title: str
    domain: str = LAB_DOMAIN  # the UPN suffix
    upn_name: str = ""  # the UPN's part before @, when it is not the username

    @property
    def upn(self) -> str:
        return f"{self.upn_name or self.username}@{self.domain}"

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.surname}"


DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("alice.martin", "Alice", "Martin", "Finance", "Accountant"),
    DemoPerson("bob.nguyen", "Bob", "Nguyen", "Engineering", "Developer"),
    DemoPerson("carol.diaz", "Carol", "Diaz", "Sales", "Account Executive"),
    DemoPerson("dave.okafor", "Dave", "Okafor", "IT", "Helpdesk Technician"),
    DemoPerson("erin.kowalski", "Erin", "Kowalski", "HR", "HR Partner"),
    DemoPerson("frank.li", "Frank", "Li", "Engineering", "SRE"),
    DemoPerson("grace.haddad", "Grace", "Haddad", "Legal", "Counsel"),
    DemoPerson("heidi.schmidt", "Heidi", "Schmidt", "Finance", "Controller"),
)


@dataclass(frozen=True)
class LabDomain:
    """One directory of each kind (an AD domain, an Entra tenant, an Okta org) and their names."""

    tag: str  # "" for the first; else the prefix of its provider names and suffix of its folders
    realm: str
    netbios: str
    address: str  # the loopback address its DC listens on (the same ports as the other's)

    @property
    def domain(self) -> str:
        """The DNS name: UPN suffix of its own people, Entra verified domain, Okta login domain."""
        return self.realm.lower()

    @property
    def base_dn(self) -> str:
        return "DC=" + ",DC=".join(self.domain.split("."))

    def provider(self, kind: str) -> str:
        """Its provider name in clampdown.toml: "ad" for the first domain, "emea-ad" for EMEA."""
        return f"{self.tag}-{kind}" if self.tag else kind

    def provider_section(self, kind: str, settings: dict[str, Any]) -> dict[str, Any]:
        """The [providers.NAME] section of a `kind` connector: `settings`, and `kind = "ad"` ...
        where the provider name ("emea-ad") does not say it."""
        return {"kind": kind, **settings} if self.tag else settings

    def folder(self, name: str) -> str:
        """Its folder under the lab dir: "samba" for the first domain, "samba-emea" for EMEA."""
        return f"{name}-{self.tag}" if self.tag else name


LAB = LabDomain("", LAB_REALM, LAB_NETBIOS, "127.0.0.1")
EMEA = LabDomain("emea", "EMEA.EXAMPLE.TEST", "EMEA", "127.0.0.2")

# EMEA's people. Two were migrated from LAB (ADMT-style: the EMEA account's sIDHistory holds the
# objectSid of the LAB account, which stays enabled: the migration is under way). Alice kept her
# UPN (lab.example.test is an alternative UPN suffix of the EMEA forest), Heidi took an EMEA one, so
# only SID history links her. Bob Nguyen of EMEA is someone else than LAB's bob.nguyen: the same
# display name and nothing else (other sAMAccountName, UPN, SID, department).
EMEA_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("alice.martin", "Alice", "Martin", "Finance", "Accountant"),
    DemoPerson("heidi.schmidt", "Heidi", "Schmidt", "Finance", "Controller", EMEA.domain),
    DemoPerson("bnguyen", "Bob", "Nguyen", "Manufacturing", "Plant Engineer", EMEA.domain, "bob.nguyen"),
    DemoPerson("lena.fischer", "Lena", "Fischer", "Operations", "Logistics Planner", EMEA.domain),
    DemoPerson("marco.rossi", "Marco", "Rossi", "Sales", "Regional Sales Manager", EMEA.domain),
)
# EMEA username -> the LAB username whose objectSid is in its sIDHistory.
MIGRATED_FROM_LAB = {"alice.martin": "alice.martin", "heidi.schmidt": "heidi.schmidt"}


def people_of(domain: LabDomain) -> tuple[DemoPerson, ...]:
    """The people with an account in the directories of `domain`."""
    return EMEA_PEOPLE if domain == EMEA else DEMO_PEOPLE
