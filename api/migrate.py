"""Applying Alembic migrations from code (``knacka db upgrade`` and the serve command)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

__all__ = ["alembic_config", "upgrade"]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic config for this package's migrations, bound to a URL or a connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(url: str | None = None, *, connection: Connection | None = None) -> None:
    """Bring the database's schema to the newest revision."""
    # "heads": domains may add migrations side by side (each revising the same parent).
    command.upgrade(alembic_config(url, connection), "heads")
