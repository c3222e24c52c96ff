"""The small error hierarchy every public call raises from.

Each class also inherits the stdlib or psycopg error a caller would naturally catch,
so ``except ValueError`` or ``except psycopg.OperationalError`` keeps working.
"""

from __future__ import annotations

import psycopg

__all__ = [
    "ConfigurationError",
    "Conflict",
    "DatabaseUnavailable",
    "EmbeddedUnavailable",
    "ExtensionMissing",
    "InvalidInput",
    "MigrationError",
    "NotFound",
    "PermissionDenied",
    "PgStoreError",
    "SerializationError",
]


class PgStoreError(Exception):
    """Base of every error langgraph-pgstore raises on purpose."""


class ConfigurationError(PgStoreError, ValueError):
    """A setting, URL or option is malformed or contradictory."""


class EmbeddedUnavailable(ConfigurationError):
    """No database URL was given and the embedded server can't run here."""


class DatabaseUnavailable(PgStoreError, psycopg.OperationalError):
    """The server can't be reached, or the connection died and could not be replaced."""


class ExtensionMissing(PgStoreError, RuntimeError):
    """A feature needs a PostgreSQL extension the server does not have."""

    def __init__(self, extension: str, feature: str) -> None:
        self.extension = extension
        self.feature = feature
        super().__init__(
            f"{feature} needs the PostgreSQL extension {extension!r}, which this server "
            f"does not provide. Install it on the server (e.g. the pgvector package), "
            f"then run `langgraph-pgstore migrate`; or use the embedded server, which ships it."
        )


class InvalidInput(PgStoreError, ValueError):
    """Input was rejected before anything was written (NUL bytes, NaN, wrong sizes, ...)."""


class SerializationError(InvalidInput, TypeError):
    """A value (graph state, metadata) can't be serialised for storage."""


class NotFound(PgStoreError, LookupError):
    """An id names no row (or one the caller may not see)."""


class MigrationError(PgStoreError, RuntimeError):
    """The schema is missing, behind, or a migration failed (and was rolled back)."""


class PermissionDenied(PgStoreError, PermissionError):
    """The caller may not touch these rows (another tenant's, or an admin-only operation)."""


class Conflict(PgStoreError):
    """The write collides with existing or concurrent data (a duplicate key, a lost race)."""
