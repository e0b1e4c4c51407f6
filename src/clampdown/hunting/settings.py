"""The [hunting] settings: where the event store lives and the limits every query runs under."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import make_url

from clampdown.config import Settings

EVENTS_FILE = "clampdown.events.duckdb"


class HuntingSettings(BaseModel):
    """Event store location, query limits and how often the API sources and rules run."""

    model_config = ConfigDict(extra="forbid")

    events_path: Path | None = None  # default: beside a SQLite database, else beside the config file
    query_timeout_seconds: float = Field(30.0, gt=0)
    max_rows: int = Field(10_000, ge=1, le=1_000_000)
    memory_limit: str = "2GB"
    threads: int = Field(2, ge=1)
    pull_interval_seconds: float = Field(60.0, gt=0)
    rules_interval_seconds: float = Field(60.0, gt=0)
    pull_page_size: int = Field(500, ge=1, le=1000)


def hunting_settings(settings: Settings) -> HuntingSettings:
    """The [hunting] section, or the defaults when the configuration has none."""
    section = getattr(settings, "hunting", None)
    return section if isinstance(section, HuntingSettings) else HuntingSettings()


def events_path(settings: Settings) -> Path:
    """The DuckDB file: `events_path`, else beside the SQLite file, else beside the config file."""
    configured = hunting_settings(settings).events_path
    if configured is not None:
        return configured.expanduser()
    url = make_url(settings.database.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database).expanduser()
        return database.with_name(database.stem + ".events.duckdb")
    base = settings.config_path.parent if settings.config_path else Path.cwd()
    return base / EVENTS_FILE
