"""The small error hierarchy every public call raises from, and the one place that maps
driver errors onto it (:func:`translate_error`), by SQLSTATE rather than by driver class.

Each class also inherits the stdlib or psycopg error a caller would naturally catch,
so ``except ValueError`` or ``except psycopg.OperationalError`` keeps working.

Why SQLSTATE: psycopg's ``OperationalError`` covers both "the server went away" (worth a
retry) and "this value is too big for the index" (never worth one). The SQLSTATE class says
which; ``transient`` on every error tells a caller whether retrying can help.
"""

from __future__ import annotations

import psycopg
from psycopg_pool import PoolTimeout

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
    "is_transient",
    "translate_error",
]


class PgStoreError(Exception):
    """Base of every error langgraph-pgstore raises on purpose.

    ``transient`` is True when the same call may succeed if retried (a lost connection, a
    deadlock); ``sqlstate`` is the server's code when the database raised it.
    """

    transient: bool = False
    sqlstate: str | None = None


class ConfigurationError(PgStoreError, ValueError):
    """A setting, URL or option is malformed or contradictory."""


class EmbeddedUnavailable(ConfigurationError):
    """No database URL was given and the embedded server can't run here."""


class DatabaseUnavailable(PgStoreError, psycopg.OperationalError):
    """The server can't be reached, or the connection died and could not be replaced."""

    transient = True


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
    """The write collides with existing or concurrent data (a duplicate key, a lost race).

    Transient when the server aborted the transaction to resolve a race (deadlock,
    serialization failure, lock timeout): the same operation may then succeed if retried.
    """


# --- classification --------------------------------------------------------------------------
#: SQLSTATE (exact code, else its two-character class) -> (our error, transient). The README's
#: Errors section shows this table; ``tests/test_errors.py`` provokes each row on a real server.
SQLSTATES: dict[str, tuple[type[PgStoreError], bool]] = {
    "08": (DatabaseUnavailable, True),  # connection exception
    "57P01": (DatabaseUnavailable, True),  # admin_shutdown
    "57P02": (DatabaseUnavailable, True),  # crash_shutdown
    "57P03": (DatabaseUnavailable, True),  # cannot_connect_now
    "53300": (DatabaseUnavailable, True),  # too_many_connections
    "53": (DatabaseUnavailable, False),  # disk full, out of memory
    "57014": (DatabaseUnavailable, False),  # query_canceled (statement_timeout)
    "40001": (Conflict, True),  # serialization_failure
    "40P01": (Conflict, True),  # deadlock_detected
    "55P03": (Conflict, True),  # lock_not_available (lock_timeout)
    "23505": (Conflict, False),  # unique_violation
    "23": (InvalidInput, False),  # other integrity violations (not null, check, foreign key)
    "22": (InvalidInput, False),  # data exception (bad value, too long, NUL, bad JSON)
    "54": (InvalidInput, False),  # program limit exceeded (index row size, stack depth)
    "42501": (PermissionDenied, False),  # insufficient_privilege, row-level security
    "42P01": (MigrationError, False),  # undefined_table
    "42703": (MigrationError, False),  # undefined_column
    "3F000": (MigrationError, False),  # invalid_schema_name
}

_HINTS: dict[type[PgStoreError], str] = {
    MigrationError: (
        ": the schema is not migrated (run `langgraph-pgstore migrate` or `db.migrate()`),"
        " or the connection's search_path does not reach it (PGSTORE_SCHEMA)"
    ),
    InvalidInput: " (rejected by the database; nothing was written)",
    PermissionDenied: " (another tenant's rows, or an operation for the admin path)",
}


def _classify(sqlstate: str) -> tuple[type[PgStoreError], bool] | None:
    return SQLSTATES.get(sqlstate) or SQLSTATES.get(sqlstate[:2])


def translate_error(exc: BaseException) -> PgStoreError | None:
    """Our error for a driver error (None when it isn't one we translate).

    Server errors are mapped by SQLSTATE (:data:`SQLSTATES`); client-side ones by kind: a
    pool timeout or a connection lost without a SQLSTATE is a transient
    ``DatabaseUnavailable``, a value the driver can't encode (NUL byte, lone surrogate) or a
    value nested too deeply to serialise is ``InvalidInput``.
    """
    if isinstance(exc, PgStoreError):
        return exc
    mapped: PgStoreError
    sqlstate = getattr(exc, "sqlstate", None) if isinstance(exc, psycopg.Error) else None
    if sqlstate:
        found = _classify(sqlstate)
        if found is None:
            return None
        cls, transient = found
        diag = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
        mapped = cls(f"{diag or exc}{_HINTS.get(cls, '')}")
    elif isinstance(exc, PoolTimeout):  # already waited the pool's timeout: don't wait again
        mapped, transient = DatabaseUnavailable(f"database unavailable: {exc}"), False
    elif isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        mapped, transient = DatabaseUnavailable(f"database unavailable: {exc}"), True
    elif isinstance(exc, psycopg.DataError | UnicodeEncodeError):
        mapped, transient = InvalidInput(f"rejected by the database: {exc}"), False
    elif isinstance(exc, RecursionError):
        mapped, transient = InvalidInput(f"value nested too deeply to store: {exc}"), False
    else:
        return None
    mapped.transient = transient
    mapped.sqlstate = sqlstate
    return mapped


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same idempotent operation may succeed."""
    mapped = translate_error(exc)
    return mapped is not None and mapped.transient
