"""SQLAlchemy Core description of our tables: what Alembic autogenerate compares against.

Runtime code speaks SQL through psycopg; these ``Table`` objects exist so that
``alembic check`` can prove the migrations and the declared schema agree, and so that
autogenerate only ever considers tables listed here (never the checkpoint tables or the
host application's tables).
"""

from __future__ import annotations

from sqlalchemy import MetaData

#: Our own Alembic version table, so we never collide with the host's ``alembic_version``.
VERSION_TABLE = "pgstore_alembic_version"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

from . import conversations, memory, telemetry  # noqa: E402  (registers tables on metadata)

#: Names of every table we own; anything else in the database is someone else's.
OWN_TABLES = frozenset(metadata.tables)

__all__ = ["OWN_TABLES", "VERSION_TABLE", "conversations", "memory", "metadata", "telemetry"]
