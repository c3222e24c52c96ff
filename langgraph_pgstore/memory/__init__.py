"""Semantic memory: LangGraph ``BaseStore`` implementations on PostgreSQL + pgvector."""

from .aio import AsyncPgMemoryStore
from .base import DedupConfig, NamespaceError, RankingConfig, SearchMode
from .embeddings import UniversalSentenceEncoder
from .options import StoreOptions
from .sync import PgMemoryStore

__all__ = [
    "AsyncPgMemoryStore",
    "DedupConfig",
    "NamespaceError",
    "PgMemoryStore",
    "RankingConfig",
    "SearchMode",
    "StoreOptions",
    "UniversalSentenceEncoder",
]
