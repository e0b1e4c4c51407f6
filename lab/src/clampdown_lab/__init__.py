"""The local lab: Samba AD DC, the Okta and Graph emulators and the demo people, on loopback."""

__version__ = "0.1.0"
