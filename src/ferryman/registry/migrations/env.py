"""Alembic environment: migrations run on the connection that Database.migrate opened.

That connection already holds the write lock and a transaction, so a migration is atomic
on both SQLite and PostgreSQL and never races another process's migration.
"""

from __future__ import annotations

from alembic import context

from ferryman.registry.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ferryman.registry.Database.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
