"""`python -m clampdown_lab.okta_emulator --settings FILE --port N`."""

from clampdown_lab.okta_emulator.server import main

main()
