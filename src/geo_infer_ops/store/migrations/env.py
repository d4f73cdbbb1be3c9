"""Alembic environment: migrations run on the connection the Store hands over."""

from alembic import context

from geo_infer_ops.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs `alembic` by hand
    raise RuntimeError("run migrations through geo_infer_ops.store.Store, which passes the connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
