"""Alembic environment: runs on the engine :func:`store.db.alembic_config` passes."""

from alembic import context
from sqlalchemy import text

from store.schema import metadata

# any constant: the key of the advisory lock that serialises concurrent migrations
MIGRATION_LOCK = 0x67726964

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if engine.dialect.name == "postgresql":  # held until this transaction ends
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=engine.dialect.name == "sqlite")
    context.run_migrations()
