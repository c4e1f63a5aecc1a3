"""Alembic environment: runs against the connection or URL handed in by api.migrate."""

from alembic import context
from sqlmodel import SQLModel

import api.members.models  # noqa: F401  - the members domain keeps its tables apart
import api.models  # noqa: F401  - registers every table on SQLModel.metadata
from api.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild tables (copy, drop, rename); with foreign keys enforced,
            # dropping a table that other rows reference fails. The pragma only takes effect
            # outside a transaction, hence on the raw connection before anything begins.
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        _run(conn)
        conn.commit()
        if sqlite:
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            conn.rollback()
            if broken:
                raise RuntimeError(f"migration left rows with broken foreign keys: {broken[:10]}")
    engine.dispose()
