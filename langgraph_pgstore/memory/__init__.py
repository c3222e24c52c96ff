"""Semantic memory: LangGraph ``BaseStore`` implementations on PostgreSQL + pgvector.

Layout: ``config`` (options), ``validate`` (input checks), ``filters`` (filters as SQL),
``sql`` (statements), ``scoring`` (what a score means, ordering, cursors), ``core`` (the
shared logic as sans-IO ops), ``background`` (access bookkeeping, liveness), ``base`` (what
both stores share), ``sync``/``aio`` (the two thin drivers).
"""

from .aio import AsyncPgMemoryStore
from .config import (
    ANNIndexConfig,
    DedupConfig,
    DistanceType,
    PgIndexConfig,
    RankingConfig,
    SearchMode,
    StoreOptions,
)
from .embeddings import UniversalSentenceEncoder
from .items import MemoryItem, MemorySearchItem, Page, PutResult
from .sync import PgMemoryStore
from .validate import NamespaceError

__all__ = [
    "ANNIndexConfig",
    "AsyncPgMemoryStore",
    "DedupConfig",
    "DistanceType",
    "MemoryItem",
    "MemorySearchItem",
    "NamespaceError",
    "Page",
    "PgIndexConfig",
    "PgMemoryStore",
    "PutResult",
    "RankingConfig",
    "SearchMode",
    "StoreOptions",
    "UniversalSentenceEncoder",
]
