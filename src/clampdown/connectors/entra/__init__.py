"""Microsoft Entra ID through Microsoft Graph: MSAL tokens, pacing, `$batch`, the connector."""

from clampdown.connectors.entra.connector import EntraConnector
from clampdown.connectors.entra.settings import EntraSettings

__all__ = ["EntraConnector", "EntraSettings"]
