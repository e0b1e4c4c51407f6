"""The tamper-evident audit log and where its events go (webhooks, syslog)."""
