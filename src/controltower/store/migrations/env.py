"""Alembic environment: runs on the caller's connection when one is passed in."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from controltower.store.engine import create_store_engine
from controltower.store.schema import build_metadata


def run_on(connection: Connection) -> None:
    """Run the migrations on an open connection."""
    context.configure(
        connection=connection,
        target_metadata=build_metadata(),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run on the connection in config.attributes, or on one opened from sqlalchemy.url."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url or pass a connection in config.attributes")
    engine = create_store_engine(url)
    try:
        with engine.begin() as opened:
            run_on(opened)
    finally:
        engine.dispose()


def run_offline() -> None:
    """Emit the migration SQL for sqlalchemy.url without connecting."""
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=build_metadata(),
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
