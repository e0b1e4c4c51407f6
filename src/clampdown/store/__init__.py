"""The action store: SQLAlchemy tables, queries and migrations. Never calls a provider."""
