"""The SQL floor: tables, engines and migrations, below both the store and the audit log."""
