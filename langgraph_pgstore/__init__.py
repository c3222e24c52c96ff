"""langgraph-pgstore: one PostgreSQL database for everything a LangGraph agent remembers."""

from .checkpoint import AsyncPgCheckpointer, PgCheckpointer
from .config import PoolOptions, Settings, redact_dsn
from .conversations import AsyncConversations, ChainAnalysis, ChainLink, Conversations
from .database import AsyncDatabase, Database
from .errors import (
    ConfigurationError,
    Conflict,
    DatabaseUnavailable,
    EmbeddedUnavailable,
    ExtensionMissing,
    InvalidInput,
    MigrationError,
    NotFound,
    PermissionDenied,
    PgStoreError,
    SerializationError,
)
from .health import HealthReport
from .memory import AsyncPgMemoryStore, DedupConfig, PgMemoryStore, RankingConfig
from .telemetry import AsyncTelemetry, Telemetry

connect = Database.connect
aconnect = AsyncDatabase.connect

__all__ = [
    "AsyncConversations",
    "AsyncDatabase",
    "AsyncPgCheckpointer",
    "AsyncPgMemoryStore",
    "AsyncTelemetry",
    "ChainAnalysis",
    "ChainLink",
    "ConfigurationError",
    "Conflict",
    "Conversations",
    "Database",
    "DatabaseUnavailable",
    "DedupConfig",
    "EmbeddedUnavailable",
    "ExtensionMissing",
    "HealthReport",
    "InvalidInput",
    "MigrationError",
    "NotFound",
    "PermissionDenied",
    "PgCheckpointer",
    "PgMemoryStore",
    "PgStoreError",
    "PoolOptions",
    "RankingConfig",
    "SerializationError",
    "Settings",
    "Telemetry",
    "aconnect",
    "connect",
    "redact_dsn",
]
