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
    demo_addresses_path: Path = REPO_ROOT / "data" / "addresses" / "jamtland-demo.csv"
    timezone: str = "Europe/Stockholm"

    # No SMTP host: emails are printed to the server's log instead (development only).
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = 10.0
    # Messages sent over one SMTP connection before it is closed and a new one opened.
    smtp_batch_size: int = 100
    mail_from: str = "Knacka <noreply@knacka.invalid>"

    login_code_minutes: int = 10
    # Codes per hour for one address asked from one client; from one client for any
    # addresses; and for one address from all clients. Counting per client as well keeps a
    # stranger from using up a user's codes.
    login_codes_per_hour: int = 5
    login_codes_per_hour_per_client: int = 20
    login_codes_per_hour_per_email: int = 20
    login_code_attempts: int = 5
    # A device token dies after this many days without use, and on revocation.
    device_token_idle_days: int = 180

    # The nightly job: snapshots, then the progress emails (local time, see `timezone`).
    nightly_hour: int = 2
    nightly_minute: int = 30
    outbox_retry_minutes: int = 15

    # District imports over the API: the upload, what a .zip may unpack to, and how long
    # reading the file may take (in a child process) before it is given up.
    import_max_upload_mb: int = Field(default=100, ge=1)
    import_max_unzipped_mb: int = Field(default=500, ge=1)
    import_timeout_seconds: float = Field(default=120.0, gt=0)

    # The party whose vote share weighs district priorities (an abbreviation such as "S",
    # or the result files' column name): KNACKA_PRIORITY_PARTY.
    priority_party: str = Field(default="S", min_length=1, max_length=100)

    sync_max_records: int = 500
    correction_window_hours: int = 24
    max_backdate_days: int = 60
    # Phones' clocks drift; a time this far ahead of the server is still accepted.
    clock_skew_minutes: int = 5

    # Turfs: how long a lease lasts unless the lead says otherwise, and the address printed
    # QR codes point at (empty: the address the request came in on).
    turf_lease_days: int = Field(default=14, ge=1, le=365)
    public_url: str = ""
    # The leads' map (/karta): the basemap's tile URL template and its attribution; an
    # empty URL draws no basemap (the kommun and län outlines are drawn either way).
    basemap_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    basemap_attribution: str = "© OpenStreetMap-bidragsgivare"
    # Turf cutting: households per turf when a request does not say.
    turf_households: int = Field(default=60, ge=1, le=10_000)
    # Members (api/members): who counts as new, the plans' deadlines, claims, cool-downs and
    # how long personal data is kept (the nightly purge, see README "Members and privacy").
    members_new_days: int = Field(default=365, ge=1)  # joined this recent: a new member
    members_contact_days: int = Field(default=7, ge=1)  # contacted within a week of joining
    members_course_days: int = Field(default=90, ge=1)  # a basic course offered within 3 months
    members_claim_minutes: int = Field(default=30, ge=1)  # how long a caller's claim lasts
    members_cooldown_hours: float = Field(default=4.0, ge=0)  # between no_answer attempts
    members_call_retention_months: int = Field(default=3, ge=0)  # call outcomes after the end
    members_left_retention_months: int = Field(default=6, ge=0)  # members who left, then erased
    # The HMAC key of erased members' tombstones (empty: a random key kept in the database).
    members_erasure_key: str = ""


@lru_cache
def get_settings() -> Settings:
    return Settings()
