"""Shared Signals (OpenID SSF 1.0 with CAEP and RISC): Security Event Tokens received from other
tools, verified, resolved to people and stored for hunting and detection rules."""
