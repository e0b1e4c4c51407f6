"""A stateful local Microsoft Graph (v1.0) and identity platform (v2.0 token endpoint) for one tenant."""

from clampdown_lab.graph_emulator.app import Emulator, create_app
from clampdown_lab.graph_emulator.server import ThreadedEmulator
from clampdown_lab.graph_emulator.tenant import Tenant

__all__ = ["Emulator", "Tenant", "ThreadedEmulator", "create_app"]
