"""Alembic environment for langgraph-pgstore.

Only our own tables are compared (``include_name``/``include_object``), our version table is
``pgstore_alembic_version``, and an advisory lock serialises concurrent upgrades. A caller may
pass an open SQLAlchemy connection in ``config.attributes["connection"]`` (what
``langgraph_pgstore.migrate`` does); otherwise the URL comes from DATABASE_URL or the embedded
server.
"""

from __future__ import annotations

import logging.config
from typing import Any

import pgvector.sqlalchemy  # noqa: F401  (teaches reflection the vector type)
from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from langgraph_pgstore.migrate import MIGRATION_LOCK_KEY, engine_for_url, vector_installed
from langgraph_pgstore.schema import OWN_TABLES, VERSION_TABLE, metadata

config = context.config
if config.config_file_name and not config.attributes.get("connection"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "schema":
        return True
    if type_ == "table":
        return name in OWN_TABLES or name == VERSION_TABLE
    # per-dimension vector indexes are created at run time, not by migrations
    return not (type_ == "index" and name and name.startswith("ix_dyn_"))


def _run(connection: Connection) -> None:
    has_vector = vector_installed(connection)

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if type_ == "column" and not has_vector and type(obj.type).__name__ == "VECTOR":
            return False  # no pgvector: vector columns are absent on purpose
        if (
            type_ == "table"
            and not has_vector
            and not reflected
            and any(type(c.type).__name__ == "VECTOR" for c in obj.columns)
            and compare_to is None
        ):
            return False  # no pgvector: vector-only tables (memory_vectors) are absent too
        return not (type_ == "index" and name and name.startswith("ix_dyn_"))

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        include_object=include_object,
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_for_url(config.get_main_option("sqlalchemy.url") or None)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: migrations inspect the server")
run_migrations_online()
