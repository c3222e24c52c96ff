"""Store configuration: the options a store takes, resolved and validated once.

``StoreOptions`` is what ``db.memory(...)`` accepts; :class:`StoreConfig` is the same after
validation, with the embedder resolved and the defaults applied, so the rest of the package
reads plain attributes and never re-checks an option.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypedDict, cast

from langchain_core.embeddings import Embeddings
from langgraph.store.base import IndexConfig, TTLConfig
from langgraph.store.base.embed import ensure_embeddings, tokenize_path

from ..errors import ConfigurationError

__all__ = [
    "ANNIndexConfig",
    "DedupConfig",
    "DistanceType",
    "PgIndexConfig",
    "RankingConfig",
    "SearchMode",
    "StoreConfig",
    "StoreOptions",
    "VectorType",
]

SearchMode: TypeAlias = Literal["vector", "keyword", "hybrid"]
DistanceType: TypeAlias = Literal["cosine", "l2", "inner_product"]
VectorType: TypeAlias = Literal["vector", "halfvec"]

SEARCH_MODES: tuple[SearchMode, ...] = ("vector", "keyword", "hybrid")
DISTANCES: tuple[DistanceType, ...] = ("cosine", "l2", "inner_product")
VECTOR_TYPES: tuple[VectorType, ...] = ("vector", "halfvec")
MAX_VALUE_BYTES = 4 * 1024 * 1024


class ANNIndexConfig(TypedDict, total=False):
    """The vector index (the keys of langgraph's ``PostgresStore`` that apply to HNSW)."""

    kind: Literal["hnsw"]
    """Only HNSW is built; the key exists so a ``PostgresStore`` config ports unchanged."""
    vector_type: VectorType
    """``"halfvec"`` (our default; upstream's is ``"vector"``) builds the index at half
    precision: half the size, faster inserts, up to 4000 dims; results are re-ranked and
    scored at full precision. ``"vector"`` indexes at full precision (up to 2000 dims)."""
    m: int
    """HNSW graph degree (default 16)."""
    ef_construction: int
    """HNSW build-time candidate list (default 40; pgvector's 64 builds 1.5x slower for a
    recall@10 gain we measured below 0.01 at 100k items, see bench_store)."""


class PgIndexConfig(IndexConfig, total=False):
    """LangGraph's ``IndexConfig`` plus ``PostgresStore``'s pgvector keys."""

    ann_index_config: ANNIndexConfig
    distance_type: DistanceType
    """``"cosine"`` (default), ``"l2"`` or ``"inner_product"``: the index's operator class."""


@dataclass(frozen=True, slots=True)
class RankingConfig:
    """How a search turns relevance into the order of results.

    ``score = (1 - wi - wr) * relevance + wi * importance + wr * 0.5 ** (age / half_life)``
    where importance comes from the item (0..1, missing = 0) and age from ``updated_at``.
    ``keyword_weight`` is how far a full keyword match pulls a hybrid relevance towards 1:
    ``relevance = 1 - (1 - similarity) * (1 - keyword_weight * coverage)``.
    """

    importance_weight: float = 0.0
    recency_weight: float = 0.0
    half_life_days: float = 30.0
    keyword_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("importance_weight", "recency_weight", "half_life_days", "keyword_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(f"RankingConfig.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigurationError(f"RankingConfig.{name} must be finite, got {value!r}")
        w = self.importance_weight + self.recency_weight
        if self.importance_weight < 0 or self.recency_weight < 0 or w > 1:
            raise ConfigurationError("ranking weights must be >= 0 and sum to at most 1")
        if self.half_life_days <= 0:
            raise ConfigurationError("RankingConfig.half_life_days must be positive")
        if not 0 <= self.keyword_weight <= 1:
            raise ConfigurationError("RankingConfig.keyword_weight must be in [0, 1]")

    @property
    def active(self) -> bool:
        """True when importance or recency take part in the order."""
        return self.importance_weight > 0 or self.recency_weight > 0


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Near-duplicate detection on put of a *new* key (seed 004's hybrid duplicate check).

    A put is a duplicate when another live item in the same namespace has the same
    ``source`` or an embedding whose similarity (the search score, 0..1) is >= ``threshold``.
    ``"skip"`` drops the put; ``"merge"`` shallow-merges the new value into the existing item.
    ``put`` returns a :class:`~langgraph_pgstore.memory.PutResult` saying which happened.
    """

    threshold: float = 0.95
    action: Literal["skip", "merge"] = "skip"

    def __post_init__(self) -> None:
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, int | float)
            or not 0 < self.threshold <= 1
        ):
            raise ConfigurationError(f"dedup threshold must be in (0, 1], got {self.threshold!r}")
        if self.action not in ("skip", "merge"):
            raise ConfigurationError(f"dedup action must be 'skip' or 'merge': {self.action!r}")


class StoreOptions(TypedDict, total=False):
    """Keyword options of ``db.memory(...)``, ``PgMemoryStore`` and ``AsyncPgMemoryStore``."""

    index: PgIndexConfig | IndexConfig | None
    """Semantic index: ``{"dims", "embed", "fields"}`` as LangGraph's, plus ``distance_type``
    and ``ann_index_config`` as ``PostgresStore``'s. Without it, ``query`` is ignored (as
    upstream) unless the search mode is ``"keyword"``."""
    ttl: TTLConfig | None
    """LangGraph's TTL config. ``omit_expired`` defaults to **True** here (upstream: False):
    an expired item is hidden at once, not only after the sweep."""
    search_mode: SearchMode
    """Default mode of a search with a query: ``"hybrid"`` (vector + keyword, default),
    ``"vector"`` or ``"keyword"``; ``search(..., mode=...)`` overrides it per call."""
    ranking: RankingConfig | None
    """Importance/recency blending and the hybrid keyword weight."""
    dedup: DedupConfig | None
    """Near-duplicate handling on put (off by default)."""
    track_access: bool
    """Count reads in ``access_count``/``last_accessed_at`` (default True). Written in the
    background, never in the read itself; False means reads write nothing at all."""
    text_search_config: str
    """PostgreSQL text search configuration of the keyword side (default ``"english"``)."""
    source_field: str | None
    """Value field naming where a memory came from (dedup, ``delete_by_source``)."""
    importance_field: str | None
    """Value field holding the item's importance in [0, 1] (ranking)."""
    ef_search: int
    """HNSW search breadth (default 64, at least the candidates a page needs); iterative
    scans go on past it when filters reject candidates."""
    max_value_bytes: int
    """Largest JSON value accepted, in bytes (default 4 MiB)."""


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Validated options (see :class:`StoreOptions` for what each means)."""

    index: PgIndexConfig | None
    embeddings: Embeddings | None
    dims: int
    fields: tuple[str, ...]
    distance: DistanceType
    vector_type: VectorType
    hnsw_m: int
    hnsw_ef_construction: int
    ttl: TTLConfig | None
    search_mode: SearchMode
    ranking: RankingConfig
    dedup: DedupConfig | None
    track_access: bool
    ts_config: str
    source_field: str | None
    importance_field: str | None
    ef_search: int
    max_value_bytes: int

    @classmethod
    def resolve(cls, **options: Any) -> StoreConfig:
        unknown = set(options) - set(StoreOptions.__annotations__)
        if unknown:
            raise ConfigurationError(f"unknown store option(s): {sorted(unknown)}")
        opts = cast(StoreOptions, options)
        mode = opts.get("search_mode", "hybrid")
        if mode not in SEARCH_MODES:
            raise ConfigurationError(f"search_mode must be one of {SEARCH_MODES}: {mode!r}")
        ts_config = opts.get("text_search_config", "english")
        if not isinstance(ts_config, str) or not re.fullmatch(r"[a-z_]+", ts_config):
            raise ConfigurationError(f"bad text_search_config {ts_config!r}")
        ranking = opts.get("ranking") or RankingConfig()
        if not isinstance(ranking, RankingConfig):
            raise ConfigurationError("ranking must be a RankingConfig")
        dedup = opts.get("dedup")
        if dedup is not None and not isinstance(dedup, DedupConfig):
            raise ConfigurationError("dedup must be a DedupConfig")
        ttl = opts.get("ttl")
        if ttl is not None:
            _check_ttl_config(ttl)
        index = cast(PgIndexConfig | None, opts.get("index"))
        ann: ANNIndexConfig = {}
        embeddings = None
        dims = 0
        fields: tuple[str, ...] = ("$",)
        distance: DistanceType = "cosine"
        if index is not None:
            index = cast(PgIndexConfig, dict(index))
            dims = _positive_int(index.get("dims"), "index dims", 16000)
            if "embed" not in index:
                raise ConfigurationError("index config needs 'embed'")
            embeddings = ensure_embeddings(index["embed"])
            fields = tuple(index.get("fields") or ["$"])
            for path in fields:
                if not isinstance(path, str) or not path:
                    raise ConfigurationError(f"index fields must be non-empty strings: {path!r}")
                if path != "$":
                    tokenize_path(path)
            distance = index.get("distance_type", "cosine")
            if distance not in DISTANCES:
                raise ConfigurationError(f"distance_type must be one of {DISTANCES}: {distance!r}")
            ann = index.get("ann_index_config") or {}
            if ann.get("kind", "hnsw") != "hnsw":
                raise ConfigurationError(f"only HNSW indexes are built, got {ann.get('kind')!r}")
        vector_type = ann.get("vector_type", "halfvec")
        if vector_type not in VECTOR_TYPES:
            raise ConfigurationError(f"vector_type must be one of {VECTOR_TYPES}: {vector_type!r}")
        if vector_type == "halfvec" and dims > 4000:
            raise ConfigurationError("halfvec indexes take at most 4000 dims")
        if vector_type == "vector" and dims > 2000:
            raise ConfigurationError("vector indexes take at most 2000 dims (use halfvec)")
        return cls(
            index=index,
            embeddings=embeddings,
            dims=dims,
            fields=fields,
            distance=distance,
            vector_type=vector_type,
            hnsw_m=_positive_int(ann.get("m", 16), "ann_index_config.m", 100),
            hnsw_ef_construction=_positive_int(
                ann.get("ef_construction", 40), "ann_index_config.ef_construction", 1000
            ),
            ttl=ttl,
            search_mode=mode,
            ranking=ranking,
            dedup=dedup,
            track_access=bool(opts.get("track_access", True)),
            ts_config=ts_config,
            source_field=opts.get("source_field", "source"),
            importance_field=opts.get("importance_field", "importance"),
            ef_search=_positive_int(opts.get("ef_search", 64), "ef_search", 1000),
            max_value_bytes=_positive_int(
                opts.get("max_value_bytes", MAX_VALUE_BYTES), "max_value_bytes", 1 << 30
            ),
        )

    @property
    def omit_expired(self) -> bool:
        """Hide expired items before the sweep deletes them (default True, see StoreOptions)."""
        return bool((self.ttl or {}).get("omit_expired", True))

    def refresh_default(self, refresh_ttl: bool | None) -> bool:
        """LangGraph's rule: the call's flag, else the config's ``refresh_on_read``, else True."""
        if refresh_ttl is not None:
            return bool(refresh_ttl)
        return bool((self.ttl or {}).get("refresh_on_read", True))

    @property
    def default_ttl(self) -> float | None:
        return (self.ttl or {}).get("default_ttl")

    @property
    def sweep_interval_minutes(self) -> float:
        return float((self.ttl or {}).get("sweep_interval_minutes") or 5)

    @property
    def hnsw_index(self) -> str:
        """Per dimension, vector type and distance (partial on ``dims``, built at run time)."""
        name = f"ix_dyn_memory_vectors_hnsw_{self.dims}"
        if self.vector_type == "vector":
            name += "_f32"
        return name + {"cosine": "", "l2": "_l2", "inner_product": "_ip"}[self.distance]

    @property
    def bm25_index(self) -> str:
        return f"ix_dyn_memory_items_bm25_{self.ts_config}"


def _positive_int(value: Any, what: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
        raise ConfigurationError(f"{what} must be an int in 1..{most}, got {value!r}")
    return value


def _check_ttl_config(ttl: Any) -> None:
    if not isinstance(ttl, dict):
        raise ConfigurationError(f"ttl must be a TTLConfig dict, got {type(ttl).__name__}")
    for key in ("default_ttl", "sweep_interval_minutes"):
        value = ttl.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(f"ttl[{key!r}] must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise ConfigurationError(f"ttl[{key!r}] must be positive, got {value!r}")
