"""Clampdown: contain a compromised identity in Active Directory, Entra ID and Okta."""

__version__ = "0.1.0"
