"""Fault tests run against the lab: the shared Samba DC and this session's Okta and Graph emulators."""

from __future__ import annotations

from tests.web import conftest as console_fixtures

web_lab = console_fixtures.web_lab
