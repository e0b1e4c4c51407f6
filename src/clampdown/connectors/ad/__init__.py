"""Active Directory over LDAP (ldap3): LDAPS/StartTLS only, a pooled least-privilege action account."""

from clampdown.connectors.ad.connector import ADConnector
from clampdown.connectors.ad.settings import ADSettings, DomainController

__all__ = ["ADConnector", "ADSettings", "DomainController"]
