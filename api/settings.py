"""Configuration, read from the environment (prefix ``KNACKA_``) and ``DATABASE_URL``."""

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["REPO_ROOT", "Settings", "get_settings"]

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KNACKA_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{REPO_ROOT / 'var' / 'knacka.sqlite3'}",
        validation_alias=AliasChoices("DATABASE_URL", "KNACKA_DATABASE_URL"),
    )
    demo_districts_path: Path = REPO_ROOT / "data" / "districts" / "jamtland-demo.geojson"
    timezone: str = "Europe/Stockholm"


@lru_cache
def get_settings() -> Settings:
    return Settings()
