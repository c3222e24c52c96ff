"""Keyword options shared by the sync and async memory stores."""

from __future__ import annotations

from typing import TypedDict

from langgraph.store.base import IndexConfig, TTLConfig

from .base import DedupConfig, RankingConfig, SearchMode

__all__ = ["StoreOptions"]


class StoreOptions(TypedDict, total=False):
    index: IndexConfig | None
    ttl: TTLConfig | None
    search_mode: SearchMode
    ranking: RankingConfig | None
    dedup: DedupConfig | None
    track_access: bool
    text_search_config: str
    source_field: str | None
    importance_field: str | None
    ef_search: int
    hnsw_m: int
    hnsw_ef_construction: int
    max_value_bytes: int
