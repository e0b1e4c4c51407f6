"""A stateful local Okta org: the Management API subset Clampdown uses, served over loopback."""

from clampdown_lab.okta_emulator.app import Emulator
from clampdown_lab.okta_emulator.component import OktaLabComponent
from clampdown_lab.okta_emulator.faults import Fault
from clampdown_lab.okta_emulator.server import EmulatorServer, EmulatorSettings, build_emulator

__all__ = ["Emulator", "EmulatorServer", "EmulatorSettings", "Fault", "OktaLabComponent", "build_emulator"]
