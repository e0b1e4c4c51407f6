"""Advanced hunting: identity events in DuckDB, their ingestion, KQL/SQL queries and detection rules."""
