"""Alembic migrations: the migrated schema is exactly what the models declare."""

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
