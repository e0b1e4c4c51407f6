"""`python -m clampdown_lab.graph_emulator`: serve a saved tenant (used by the lab component)."""

from clampdown_lab.graph_emulator.server import main

main()
