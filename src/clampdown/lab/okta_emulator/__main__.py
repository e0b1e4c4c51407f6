"""`python -m clampdown.lab.okta_emulator --settings FILE --port N`."""

from clampdown.lab.okta_emulator.server import main

main()
