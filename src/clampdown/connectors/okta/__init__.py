"""Okta: suspend, unsuspend and deactivate users through the Okta Management API."""

from clampdown.connectors.okta.connector import OktaConnector
from clampdown.connectors.okta.settings import OktaSettings

__all__ = ["OktaConnector", "OktaSettings"]
