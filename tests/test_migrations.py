"""Alembic migrations: the migrated schema is exactly what the models declare."""

import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from api.db import make_engine
from api.migrate import alembic_config, upgrade
from tests.conftest import postgres_database


def test_migrated_schema_matches_models(engine):
    """Runs on both backends; the session's database was built by `upgrade` alone."""
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata
        )
    assert diff == []


@pytest.mark.postgresql_only
def test_postgresql_upgrade_downgrade_upgrade_round_trip():
    with postgres_database() as url:
        upgrade(url)
        command.downgrade(alembic_config(url), "base")
        eng = make_engine(url)
        assert set(inspect(eng).get_table_names()) == {"alembic_version"}
        eng.dispose()
        upgrade(url)
        eng = make_engine(url)
        with eng.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
            assert context.get_current_revision() is not None
        eng.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_contact_logs_get_their_local_day_when_migrated(backend, tmp_path):
    """0003 adds contact_log.day: existing logs get their Europe/Stockholm date."""
    from contextlib import nullcontext

    from sqlalchemy import text

    context = (
        nullcontext(f"sqlite:///{tmp_path / 'm.sqlite3'}")
        if backend == "sqlite"
        else postgres_database()
    )
    with context as url:
        command.upgrade(alembic_config(url), "0002")
        eng = make_engine(url)
        with eng.begin() as conn:
            now = "2026-06-01 12:00:00+00:00"
            conn.execute(
                text(
                    "INSERT INTO partidistrikt (id, code, name, created_at) "
                    "VALUES (1, '23', 'J', :t)"
                ),
                {"t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO kommun (id, code, name, partidistrikt_id, created_at) "
                    "VALUES (1, '2380', 'Ö', 1, :t)"
                ),
                {"t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO district (id, code, name, kommun_id, geom_wkb, min_lon, min_lat, "
                    "max_lon, max_lat, area_m2, created_at, updated_at) "
                    "VALUES (1, '23800001', 'D', 1, :g, 0, 0, 1, 1, 1, :t, :t)"
                ),
                {"g": b"\x00", "t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO app_user (id, email, display_name, role, unit_kind, unit_id, "
                    "created_at) VALUES (1, 'a@example.org', 'A', 'volunteer', 'forening', 1, :t)"
                ),
                {"t": now},
            )
            conn.execute(
                text(
                    "INSERT INTO contact_log (client_uuid, body_hash, user_id, district_id,"
                    " kommun_id, kind, outcome, quantity, conversations, new_member,"
                    " occurred_at, received_at)"
                    " VALUES (:u, 'h', 1, 1, 1, 'door', 'conversation', 1, 1, :nm, :o, :r)"
                ),
                {
                    "u": uuid.UUID(int=7) if backend == "postgresql" else uuid.UUID(int=7).hex,
                    "nm": False,
                    "o": "2026-06-01 22:30:00+00:00",
                    "r": now,
                },
            )
        eng.dispose()
        upgrade(url)
        eng = make_engine(url)
        with eng.connect() as conn:
            day, changed = conn.execute(text("SELECT day, changed_at FROM contact_log")).one()
        eng.dispose()
    assert str(day) == "2026-06-02"  # 00:30 in Stockholm the next morning
    assert str(changed).startswith("2026-06-01 12:00:00")
