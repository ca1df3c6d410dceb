"""Alembic environment: migrates the app's tables (see server/models.py) with a sync psycopg engine."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from booktutor.server.models import Base

config = context.config
target_metadata = Base.metadata

if not config.get_main_option("sqlalchemy.url"):
    # `alembic upgrade head` by hand: use DATABASE_URL like booktutor does.
    import os

    from booktutor.server.db import sqlalchemy_url

    config.set_main_option("sqlalchemy.url", sqlalchemy_url(os.environ["DATABASE_URL"], driver="psycopg"))


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
