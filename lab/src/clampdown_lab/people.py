"""The demo people who exist in every lab provider (AD, Entra ID, Okta)."""

from __future__ import annotations

from dataclasses import dataclass

LAB_REALM = "LAB.EXAMPLE.TEST"
LAB_DOMAIN = "lab.example.test"  # UPN suffix, Okta login domain and Entra verified domain
LAB_NETBIOS = "LAB"


@dataclass(frozen=True)
class DemoPerson:
    """One person; `username` is the sAMAccountName, `upn` the login everywhere."""

    username: str
    given_name: str
    surname: str
    department: str
    title: str

    @property
    def upn(self) -> str:
        return f"{self.username}@{LAB_DOMAIN}"

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
