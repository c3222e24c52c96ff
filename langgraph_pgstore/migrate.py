"""Bring a database to head: the checkpoint tables (langgraph's own migrations) and ours (Alembic).

Idempotent, and safe when several processes migrate at once: each half runs under its own
PostgreSQL advisory lock, so the second process waits, then finds nothing to do.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from langgraph.checkpoint.postgres import PostgresSaver
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from ._ops import Op, Query
from .config import Settings
from .connection import Endpoint
from .errors import DatabaseUnavailable, MigrationError
from .schema import VERSION_TABLE

__all__ = ["current_revision", "downgrade", "head_revision", "migrate"]

log = logging.getLogger(__name__)

#: Advisory lock keys ("pgstore" as ASCII, plus one per half).
MIGRATION_LOCK_KEY = 0x7067_7374_6F72_6501
CHECKPOINT_LOCK_KEY = 0x7067_7374_6F72_6502


def migrations_dir() -> Path:
    """The Alembic scripts: packaged in the wheel, or the repo's ``migrations/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise MigrationError(f"Alembic scripts not found next to {here}")


def alembic_config(connection: Connection | None = None, schema: str = "public") -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("version_table", VERSION_TABLE)
    cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    return cfg


@cache
def head_revision() -> str:
    """The newest revision shipped with this version of the package."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise MigrationError(f"expected one migration head, found {heads}")
    return heads[0]


def engine_for_url(url: str | None, settings: Settings | None = None) -> Engine:
    """A SQLAlchemy engine over psycopg 3 for Alembic; ``None`` resolves env or embedded."""
    return Endpoint.of(url, settings).engine()


def vector_installed(connection: Connection) -> bool:
    row = connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first()
    return row is not None


def _poll_advisory_lock(conn: psycopg.Connection[Any], key: int, timeout: float = 300) -> None:
    """Take a session advisory lock by polling, never by a blocking wait.

    langgraph's setup runs ``CREATE INDEX CONCURRENTLY``, which waits for every open
    transaction, including a ``pg_advisory_lock`` call blocked behind it: a deadlock when two
    processes migrate at once. ``pg_try_advisory_lock`` returns at once, so nothing waits
    inside a transaction.
    """
    deadline = time.monotonic() + timeout
    while not conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (key,)).fetchone()["got"]:  # type: ignore[index]
        if time.monotonic() > deadline:
            raise MigrationError(f"another process has been migrating for over {timeout:.0f}s")
        time.sleep(0.05)


def _setup_checkpoint_tables(endpoint: Endpoint) -> None:
    schema = endpoint.settings.schema
    with endpoint.connect() as conn:
        if schema != "public":
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        _poll_advisory_lock(conn, CHECKPOINT_LOCK_KEY)
        try:
            PostgresSaver(conn).setup()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (CHECKPOINT_LOCK_KEY,))


def migrate(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    revision: str = "head",
    endpoint: Endpoint | None = None,
) -> str:
    """Upgrade the checkpoint tables and ours to ``revision``; returns the revision reached."""
    endpoint = endpoint or Endpoint.of(url, settings)
    try:
        _setup_checkpoint_tables(endpoint)
        engine = endpoint.engine()
        try:
            with engine.begin() as conn:
                command.upgrade(alembic_config(conn, endpoint.settings.schema), revision)
            with engine.connect() as conn:
                reached = MigrationContext.configure(
                    conn, opts={"version_table": VERSION_TABLE}
                ).get_current_revision()
        finally:
            engine.dispose()
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"can't migrate {endpoint.redacted}: {exc}") from exc
    except MigrationError:
        raise
    except Exception as exc:
        raise MigrationError(
            f"migration of {endpoint.redacted} failed and was rolled back: {exc}"
        ) from exc
    log.info("database %s at revision %s", endpoint.redacted, reached)
    return reached or "base"


def downgrade(url: str, revision: str = "base", settings: Settings | None = None) -> None:
    """Downgrade our tables (never the checkpoint tables) to ``revision``."""
    endpoint = Endpoint.of(url, settings)
    engine = endpoint.engine()
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn, endpoint.settings.schema), revision)
    finally:
        engine.dispose()


def current_revision() -> Op[str | None]:
    """Revision recorded in our version table (None when never migrated)."""
    rows = yield Query("SELECT to_regclass(%s) IS NOT NULL AS present", (VERSION_TABLE,))
    if not rows[0]["present"]:
        return None
    rows = yield Query(f"SELECT version_num FROM {VERSION_TABLE}")
    return rows[0]["version_num"] if rows else None
