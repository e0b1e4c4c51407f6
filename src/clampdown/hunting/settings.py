"""Where the event store lives; the [hunting] settings themselves are in clampdown.config."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from clampdown.config import HuntingSettings, Settings

EVENTS_FILE = "clampdown.events.duckdb"

__all__ = ["EVENTS_FILE", "HuntingSettings", "events_path", "hunting_settings"]


def hunting_settings(settings: Settings) -> HuntingSettings:
    """The [hunting] section."""
    return settings.hunting


def events_path(settings: Settings) -> Path:
    """The DuckDB file: `events_path`, else beside the SQLite file, else beside the config file."""
    configured = settings.hunting.events_path
    if configured is not None:
        path = configured.expanduser()
        if not path.is_absolute() and settings.config_path is not None:
            path = settings.config_path.parent / path
        return path
    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database).expanduser()
        return database.with_name(database.stem + ".events.duckdb")
    base = settings.config_path.parent if settings.config_path else Path.cwd()
    return base / EVENTS_FILE
