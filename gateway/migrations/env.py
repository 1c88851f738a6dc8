"""Alembic environment for the gateway database.

The gateway builds the Alembic ``Config`` in code (``gateway.db.upgrade``) and hands
over an open connection in ``config.attributes["connection"]``; no alembic.ini is read.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from gateway.db import metadata

config = context.config


def run_migrations() -> None:
    """Run the migrations on the given connection, or on ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; the gateway migrates at start")
run_migrations()
