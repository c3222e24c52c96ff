"""What the sync and async memory stores share: config, validation, filters, SQL and ops.

Every database step is a sans-IO op (see ``_ops``); the only thing the sync and async
stores do differently is calling the embedder and driving the op. Embedding happens before
the transaction starts, so a failing embedder leaves nothing half-written.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias, cast

import numpy as np
import psycopg
from langgraph.store.base import (
    GetOp,
    IndexConfig,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format

from .. import tenancy
from .._ops import Op as DbOp
from .._ops import Query
from ..errors import ConfigurationError, ExtensionMissing, InvalidInput, SerializationError

__all__ = [
    "DedupConfig",
    "NamespaceError",
    "RankingConfig",
    "SearchMode",
    "StoreCore",
    "search_op",
]

SearchMode: TypeAlias = Literal["vector", "keyword", "hybrid"]
FILTER_OPS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
RRF_K = 60
MAX_VALUE_BYTES = 4 * 1024 * 1024

# --------------------------------------------------------------------------- SQL

HAS_BM25 = "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_textsearch') AS ok"
CREATE_BM25 = (
    "CREATE INDEX IF NOT EXISTS {name} ON memory_items USING bm25 (search_text) "
    "WITH (text_config = {cfg})"
)
HAS_VECTOR = """
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')
   AND to_regclass('memory_vectors') IS NOT NULL AS ok
"""
LOCK_INDEX = "SELECT pg_advisory_xact_lock(hashtext('langgraph_pgstore.memory_hnsw'), %s)"
INDEX_EXISTS = "SELECT to_regclass(%s) IS NOT NULL AS ok"
CREATE_HNSW = (
    "CREATE INDEX IF NOT EXISTS {name} ON memory_vectors USING hnsw "
    "((embedding::vector({dims})) vector_cosine_ops) WITH (m = {m}, ef_construction = {efc}) "
    "WHERE dims = {dims}"
)
NOT_EXPIRED = "(i.expires_at IS NULL OR i.expires_at > now())"
ITEM_COLUMNS = "i.prefix, i.key, i.value, i.created_at, i.updated_at"
GET_ITEMS = f"""
SELECT {ITEM_COLUMNS} FROM memory_items i
JOIN unnest(%s::text[], %s::text[]) AS u(prefix, key) ON i.prefix = u.prefix AND i.key = u.key
WHERE {NOT_EXPIRED}
"""
TOUCH = """
UPDATE memory_items AS i SET
    access_count = i.access_count + 1,
    last_accessed_at = now(),
    expires_at = CASE WHEN %s AND i.ttl_minutes IS NOT NULL
                      THEN now() + make_interval(secs => i.ttl_minutes * 60) ELSE i.expires_at END
FROM unnest(%s::text[], %s::text[]) AS u(prefix, key)
WHERE i.prefix = u.prefix AND i.key = u.key
"""
DELETE_ITEMS = """
DELETE FROM memory_items i USING unnest(%s::text[], %s::text[]) AS u(prefix, key)
WHERE i.prefix = u.prefix AND i.key = u.key
"""
UPSERT_ITEMS = """
INSERT INTO memory_items AS i
    (prefix, key, value, expires_at, ttl_minutes, source, importance, search_text, search_tsv,
     owner_id)
SELECT u.prefix, u.key, u.value::jsonb,
       CASE WHEN u.ttl IS NULL THEN NULL ELSE now() + make_interval(secs => u.ttl * 60) END,
       u.ttl, u.source, u.importance, u.txt, to_tsvector(%s::regconfig, coalesce(u.txt, '')),
       %s::text
FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::float8[], %s::text[])
     AS u(prefix, key, value, ttl, source, importance, txt)
ON CONFLICT (prefix, key) DO UPDATE SET
    value = excluded.value, updated_at = now(), expires_at = excluded.expires_at,
    ttl_minutes = excluded.ttl_minutes, source = excluded.source,
    importance = excluded.importance, search_text = excluded.search_text,
    search_tsv = excluded.search_tsv, owner_id = excluded.owner_id
"""
DELETE_VECTORS = """
DELETE FROM memory_vectors v USING unnest(%s::text[], %s::text[]) AS u(prefix, key)
WHERE v.prefix = u.prefix AND v.key = u.key
"""
INSERT_VECTOR = """
INSERT INTO memory_vectors (prefix, key, field_name, dims, embedding, owner_id)
VALUES (%s, %s, %s, %s, %b::vector, %s)
"""
# Planner knobs for the vector query only (reset right after): JSON filters have no
# statistics, so without them the planner guesses "very selective", sorts the matches or
# joins them by scanning memory_items, instead of walking the HNSW index and probing the PK.
_VECTOR_KNOBS = (
    "enable_sort",
    "enable_seqscan",
    "enable_material",
    "enable_hashjoin",
    "enable_mergejoin",
)
SET_ITERATIVE = (
    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.ef_search', %s, true), "
    + ", ".join(f"set_config('{k}', 'off', true)" for k in _VECTOR_KNOBS)
)
RESET_SORT = "SELECT " + ", ".join(f"set_config('{k}', 'on', true)" for k in _VECTOR_KNOBS)
#: Access stats and TTL refreshes on reads are bookkeeping: don't wait for a WAL flush.
ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"
FIND_DUPLICATES = """
SELECT u.ord, d.key AS dup_key, d.value AS dup_value
FROM unnest(%(ord)s::int[], %(prefix)s::text[], %(key)s::text[], %(source)s::text[],
            %(embedding)s::text[]) AS u(ord, prefix, key, source, embedding)
CROSS JOIN LATERAL (
    SELECT i.key, i.value FROM memory_items i
    WHERE i.prefix = u.prefix AND i.key <> u.key AND i.source = u.source AND {not_expired}
    UNION ALL
    SELECT * FROM (
        SELECT i.key, i.value FROM memory_vectors v
        JOIN memory_items i ON i.prefix = v.prefix AND i.key = v.key
        WHERE u.embedding IS NOT NULL AND v.prefix = u.prefix AND v.dims = {dims}
          AND v.key <> u.key AND {not_expired}
          AND 1 - (v.embedding::vector({dims}) <=> u.embedding::vector({dims})) >= %(threshold)s
        ORDER BY v.embedding::vector({dims}) <=> u.embedding::vector({dims})
        LIMIT 1
    ) AS sem
    LIMIT 1
) AS d
WHERE NOT EXISTS (SELECT 1 FROM memory_items e WHERE e.prefix = u.prefix AND e.key = u.key)
"""
MERGE_DUPLICATE = """
UPDATE memory_items SET value = value || %s::jsonb, updated_at = now(),
       importance = GREATEST(importance, %s)
WHERE prefix = %s AND key = %s
"""
SWEEP = "DELETE FROM memory_items WHERE expires_at IS NOT NULL AND expires_at <= now()"
DELETE_BY_SOURCE = """
DELETE FROM memory_items WHERE (prefix = %s OR prefix LIKE %s) AND source = %s
"""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True, slots=True)
class RankingConfig:
    """Blend importance and recency into the score (seed 001's memory ranking).

    ``score = (1 - wi - wr) * relevance + wi * importance + wr * 0.5 ** (age / half_life)``
    where importance comes from the item (0..1, missing = 0) and age from ``updated_at``.
    """

    importance_weight: float = 0.0
    recency_weight: float = 0.0
    half_life_days: float = 30.0

    def __post_init__(self) -> None:
        w = self.importance_weight + self.recency_weight
        if self.importance_weight < 0 or self.recency_weight < 0 or w > 1:
            raise ConfigurationError("ranking weights must be >= 0 and sum to at most 1")
        if self.half_life_days <= 0:
            raise ConfigurationError("half_life_days must be positive")

    @property
    def active(self) -> bool:
        return self.importance_weight > 0 or self.recency_weight > 0


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Near-duplicate detection on put of a *new* key (seed 004's hybrid duplicate check).

    A put is a duplicate when another live item in the same namespace has the same
    ``source`` or an embedding with cosine similarity >= ``threshold``. ``"skip"`` drops
    the put; ``"merge"`` shallow-merges the new value into the existing item instead.
    """

    threshold: float = 0.95
    action: Literal["skip", "merge"] = "skip"

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ConfigurationError("dedup threshold must be in (0, 1]")
        if self.action not in ("skip", "merge"):
            raise ConfigurationError("dedup action must be 'skip' or 'merge'")


@dataclass(frozen=True, slots=True)
class SearchExtras:
    mode: SearchMode | None = None
    min_score: float | None = None


@dataclass(slots=True)
class _Embedded:
    """Texts to embed for a batch, and where each vector goes."""

    texts: list[str] = field(default_factory=list)
    owners: list[tuple[int, str, int]] = field(default_factory=list)  # (put, field, text index)
    queries: dict[int, int] = field(default_factory=dict)  # search op index -> text index


# --------------------------------------------------------------------------- helpers


def validate_namespace(namespace: Any, *, allow_empty: bool = False) -> tuple[str, ...]:
    """LangGraph's label rules, raised as :class:`InvalidInput` (also an InvalidNamespaceError)."""
    if not isinstance(namespace, tuple | list):
        raise NamespaceError(
            f"namespace must be a tuple of strings, got {type(namespace).__name__}"
        )
    ns = tuple(namespace)
    if not ns and not allow_empty:
        raise NamespaceError("namespace cannot be empty")
    for label in ns:
        if not isinstance(label, str):
            raise NamespaceError(f"namespace labels must be strings, got {label!r} in {ns}")
        if not label:
            raise NamespaceError(f"namespace labels cannot be empty strings: {ns}")
        if "." in label:
            raise NamespaceError(f"namespace labels cannot contain '.': {label!r} in {ns}")
        if "\x00" in label:
            raise NamespaceError(f"namespace labels cannot contain NUL bytes: {ns}")
    return ns


class NamespaceError(InvalidInput, InvalidNamespaceError):
    """A namespace label LangGraph would reject (empty, dotted, not a string, NUL)."""


def _prefix_like(prefix: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", prefix) + ".%"


def _ns_condition(column: str, namespace: tuple[str, ...]) -> tuple[sql.Composable, list[Any]]:
    if not namespace:
        return sql.SQL("TRUE"), []
    p = ".".join(namespace)
    cond = sql.SQL("({c} = %s OR {c} LIKE %s)").format(c=sql.SQL(column))
    return cond, [p, _prefix_like(p)]


def _dumps(value: Any, what: str) -> str:
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{what} is not JSON-serialisable: {exc}") from exc


def _json_path(path: str) -> list[str]:
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise InvalidInput(f"bad filter path {path!r}")
    return parts


def compile_filter(flt: Mapping[str, Any] | None) -> tuple[sql.Composable, list[Any]]:
    """Filter dict -> SQL over ``i.value``. Ordered operators compare within one JSON type,
    so numbers compare as numbers and ``{"$gt": 5}`` never matches a string."""
    if not flt:
        return sql.SQL("TRUE"), []
    if not isinstance(flt, Mapping):
        raise InvalidInput(f"filter must be a dict, got {type(flt).__name__}")
    parts: list[sql.Composable] = []
    params: list[Any] = []
    for path, cond in flt.items():
        if not isinstance(path, str):
            raise InvalidInput(f"filter keys must be strings, got {path!r}")
        jp = _json_path(path)
        if (
            isinstance(cond, Mapping)
            and cond
            and all(isinstance(k, str) and k.startswith("$") for k in cond)
        ):
            ops = cond
        elif isinstance(cond, Mapping) and any(
            isinstance(k, str) and k.startswith("$") for k in cond
        ):
            raise InvalidInput(f"filter on {path!r} mixes operators and fields: {dict(cond)!r}")
        else:
            ops = {"$eq": cond}
        for name, operand in ops.items():
            if name not in FILTER_OPS:
                raise InvalidInput(
                    f"unknown filter operator {name!r}; expected one of {sorted(FILTER_OPS)}"
                )
            s, p = _compile_one(jp, name, operand)
            parts.append(s)
            params.extend(p)
    return sql.SQL(" AND ").join(parts), params


_ORDER = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}


def _compile_one(jp: list[str], name: str, operand: Any) -> tuple[sql.Composable, list[Any]]:
    at = sql.SQL("(i.value #> %s::text[])")
    if name == "$exists":
        if not isinstance(operand, bool):
            raise InvalidInput(f"$exists takes true or false, got {operand!r}")
        return sql.SQL("{} IS {} NULL").format(at, sql.SQL("NOT" if operand else "")), [jp]
    if name in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise InvalidInput(f"{name} takes a list, got {type(operand).__name__}")
        values = [_dumps(v, f"{name} operand") for v in operand]
        if name == "$in":
            return sql.SQL("{} = ANY(%s::jsonb[])").format(at), [jp, values]
        return sql.SQL("NOT coalesce({} = ANY(%s::jsonb[]), false)").format(at), [jp, values]
    encoded = _dumps(operand, f"{name} operand")
    if name == "$eq":
        return sql.SQL("{} = %s::jsonb").format(at), [jp, encoded]
    if name == "$ne":
        return sql.SQL("{} IS DISTINCT FROM %s::jsonb").format(at), [jp, encoded]
    if operand is None or isinstance(operand, Mapping):
        raise InvalidInput(f"{name} needs a number, string, boolean or list, got {operand!r}")
    return (
        sql.SQL("(jsonb_typeof({a}) = jsonb_typeof(%s::jsonb) AND {a} {op} %s::jsonb)").format(
            a=at, op=sql.SQL(_ORDER[name])
        ),
        [jp, encoded, jp, encoded],
    )


def _label_regex(label: str) -> str:
    return "[^.]+" if label == "*" else re.sub(r"([^A-Za-z0-9_])", r"\\\1", label)


def _match_condition(cond: MatchCondition) -> tuple[sql.Composable, list[Any]]:
    labels = list(cond.path)
    for label in labels:
        if label != "*":
            validate_namespace((label,))
    body = r"\.".join(_label_regex(lbl) for lbl in labels)
    if cond.match_type == "prefix":
        pattern = "^" + body + r"(\.|$)"
    elif cond.match_type == "suffix":
        pattern = r"(^|\.)" + body + "$"
    else:
        raise InvalidInput(f"unknown match type {cond.match_type!r}")
    if not labels:
        return sql.SQL("TRUE"), []
    return sql.SQL("i.prefix ~ %s"), [pattern]


def _to_item(row: Mapping[str, Any], cls: type[Item] = Item, score: float | None = None) -> Item:
    ns = tuple(row["prefix"].split("."))
    if cls is SearchItem:
        return SearchItem(ns, row["key"], row["value"], row["created_at"], row["updated_at"], score)
    return Item(
        value=row["value"],
        key=row["key"],
        namespace=ns,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _strings(value: Any) -> Iterable[str]:
    """Every string leaf of a JSON value: the keyword text of items without index fields."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _vec_text(v: np.ndarray) -> str:
    return "[" + ",".join(["%.9g"] * len(v)) % tuple(v.tolist()) + "]"


class _Vec:
    """A float32 vector sent in pgvector's binary format (no text formatting/parsing)."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray) -> None:
        self.a = a


class _VecDumper(Dumper):
    format = Format.BINARY
    oid = 0  # the server infers ``vector`` from the ``::vector`` cast next to the parameter

    def dump(self, obj: _Vec) -> bytes:
        return _VEC_HEADER.pack(obj.a.shape[0], 0) + obj.a.astype(">f4").tobytes()


_VEC_HEADER = struct.Struct(">HH")
psycopg.adapters.register_dumper(_Vec, _VecDumper)


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, got {value!r}")
    return float(value)


def write_owner(ops: Sequence[Op], conn: object) -> str | None:
    """Owner of the memories a batch writes: the tenant in effect; else the user of the graph
    run it executes in (whatever the namespace); else ``db.on_behalf_of``; else None (shared).
    Namespace labels never decide."""
    if not any(isinstance(op, PutOp) for op in ops):
        return None
    return tenancy.resolve_owner(conn, tenancy.run_user())[1]


# --------------------------------------------------------------------------- the core


class StoreCore:
    """Configuration and ops shared by :class:`PgMemoryStore` and :class:`AsyncPgMemoryStore`."""

    def __init__(
        self,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        search_mode: SearchMode = "hybrid",
        ranking: RankingConfig | None = None,
        dedup: DedupConfig | None = None,
        track_access: bool = True,
        text_search_config: str = "english",
        source_field: str | None = "source",
        importance_field: str | None = "importance",
        ef_search: int = 100,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        max_value_bytes: int = MAX_VALUE_BYTES,
    ) -> None:
        from langgraph.store.base.embed import ensure_embeddings

        if search_mode not in ("vector", "keyword", "hybrid"):
            raise ConfigurationError(
                f"search_mode must be vector, keyword or hybrid: {search_mode!r}"
            )
        if not re.fullmatch(r"[a-z_]+", text_search_config):
            raise ConfigurationError(f"bad text search config {text_search_config!r}")
        self.index_config = index
        self.embeddings = None
        self.dims = 0
        self.fields: list[str] = ["$"]
        if index is not None:
            dims = index.get("dims")
            if not isinstance(dims, int) or isinstance(dims, bool) or not 0 < dims <= 16000:
                raise ConfigurationError(f"index dims must be an int in 1..16000, got {dims!r}")
            if "embed" not in index:
                raise ConfigurationError("index config needs 'embed'")
            self.dims = dims
            self.embeddings = ensure_embeddings(index["embed"])
            self.fields = list(index.get("fields") or ["$"])
        self.ttl_config = ttl
        self.search_mode: SearchMode = search_mode
        self.ranking = ranking or RankingConfig()
        self.dedup = dedup
        self.track_access = track_access
        self.ts_config = text_search_config
        self.source_field = source_field
        self.importance_field = importance_field
        self.ef_search = int(ef_search)
        self.hnsw_m = int(hnsw_m)
        self.hnsw_efc = int(hnsw_ef_construction)
        self.max_value_bytes = max_value_bytes
        self._has_vector: bool | None = None
        self._has_bm25 = False

    # ---- setup -------------------------------------------------------------------------

    @property
    def bm25_index(self) -> str:
        return f"ix_dyn_memory_items_bm25_{self.ts_config}"

    @property
    def index_name(self) -> str:
        return f"ix_dyn_memory_vectors_hnsw_{self.dims}"

    def setup_op(self) -> DbOp[bool]:
        """Detect pgvector and create this store's per-dimension HNSW index if missing."""
        rows = yield Query(HAS_BM25)
        self._has_bm25 = bool(rows[0]["ok"])
        if self._has_bm25:
            rows = yield Query(INDEX_EXISTS, (self.bm25_index,))
            if not rows[0]["ok"]:
                yield Query(LOCK_INDEX, (0,))
                yield Query(
                    sql.SQL(CREATE_BM25).format(
                        name=sql.Identifier(self.bm25_index), cfg=sql.Literal(self.ts_config)
                    )
                )
        rows = yield Query(HAS_VECTOR)
        has = bool(rows[0]["ok"])
        if has and self.dims:
            rows = yield Query(INDEX_EXISTS, (self.index_name,))
            if not rows[0]["ok"]:
                yield Query(LOCK_INDEX, (self.dims,))
                yield Query(
                    sql.SQL(CREATE_HNSW).format(
                        name=sql.Identifier(self.index_name),
                        dims=sql.Literal(self.dims),
                        m=sql.Literal(self.hnsw_m),
                        efc=sql.Literal(self.hnsw_efc),
                    )
                )
        return has

    def _require_vector(self, feature: str) -> None:
        if not self._has_vector:
            raise ExtensionMissing("vector", feature)

    # ---- prepare (pure, before any IO) ---------------------------------------------------

    def prepare(self, ops: Iterable[Op]) -> tuple[list[Op], _Embedded]:
        """Validate every op and collect the texts to embed."""
        ops = list(ops)
        emb = _Embedded()
        for n, op in enumerate(ops):
            if isinstance(op, PutOp):
                validate_namespace(op.namespace)
                if op.namespace[0] == "langgraph":
                    raise NamespaceError(f'root label cannot be "langgraph": {op.namespace}')
                if not isinstance(op.key, str) or not op.key or "\x00" in op.key:
                    raise InvalidInput(
                        f"key must be a non-empty string without NUL, got {op.key!r}"
                    )
                if op.value is None:
                    continue
                if not isinstance(op.value, Mapping):
                    raise SerializationError(f"value must be a dict, got {type(op.value).__name__}")
                _number(op.ttl, "ttl")
                if self.embeddings is None or op.index is False:
                    continue
                for fname, text in self._texts(op):
                    emb.owners.append((n, fname, len(emb.texts)))
                    emb.texts.append(text)
            elif isinstance(op, GetOp):
                validate_namespace(op.namespace)
            elif isinstance(op, SearchOp):
                validate_namespace(op.namespace_prefix, allow_empty=True)
                compile_filter(op.filter)
                if op.limit < 0 or op.offset < 0:
                    raise InvalidInput("limit and offset must be >= 0")
                if op.query is not None and not isinstance(op.query, str):
                    raise InvalidInput("query must be a string")
                if op.query and self.embeddings is not None and self._mode(op) != "keyword":
                    emb.queries[n] = len(emb.texts)
                    emb.texts.append(op.query)
            elif isinstance(op, ListNamespacesOp):
                for c in op.match_conditions or ():
                    _match_condition(c)
            else:
                raise InvalidInput(f"unknown store op {type(op).__name__}")
        return ops, emb

    def _mode(self, op: SearchOp) -> SearchMode:
        extras = getattr(op, "_extras", None)
        mode = extras.mode if isinstance(extras, SearchExtras) and extras.mode else self.search_mode
        if self.embeddings is None:
            return "keyword"
        return mode

    def _texts(self, op: PutOp) -> list[tuple[str, str]]:
        fields = self.fields if op.index is None else list(op.index or [])
        out: list[tuple[str, str]] = []
        for path in fields:
            if path == "$":
                out.append(("$", _dumps(op.value, "value")))
                continue
            texts = get_text_at_path(op.value, tokenize_path(path))
            if len(texts) == 1:
                out.append((path, texts[0]))
            else:
                out.extend((f"{path}[{i}]", t) for i, t in enumerate(texts))
        return out

    def check_vectors(self, vectors: Sequence[Sequence[float]], expected: int) -> np.ndarray:
        """Reject wrong sizes, NaN/inf and zero vectors before anything is written."""
        if len(vectors) != expected:
            raise InvalidInput(f"embedder returned {len(vectors)} vectors for {expected} texts")
        if not expected:
            return np.zeros((0, self.dims), dtype=np.float32)
        try:
            arr = np.asarray(vectors, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"embedder returned ragged or non-numeric vectors: {exc}") from exc
        if arr.ndim != 2 or arr.shape[1] != self.dims:
            raise InvalidInput(
                f"embedding has shape {arr.shape[1:]} but the index has dims={self.dims}"
            )
        if not np.isfinite(arr).all():
            raise InvalidInput("embedding contains NaN or infinite values")
        if (np.linalg.norm(arr, axis=1) == 0).any():
            raise InvalidInput("embedding is all zeros (cosine similarity is undefined)")
        return arr.astype(np.float32)

    # ---- the batch op ------------------------------------------------------------------

    def batch_op(
        self, ops: list[Op], emb: _Embedded, vectors: np.ndarray, owner: str | None = None
    ) -> DbOp[list[Result]]:
        """Run a batch; its puts are owned by ``owner`` (see :func:`write_owner`)."""
        results: list[Result] = [None] * len(ops)
        puts = {(n): op for n, op in enumerate(ops) if isinstance(op, PutOp)}
        if puts:
            yield from self._put_op(puts, emb, vectors, owner)
        elif self.track_access or self.ttl_config is not None:
            yield Query(ASYNC_COMMIT)  # reads only: their writes are access bookkeeping
        for n, op in enumerate(ops):
            if isinstance(op, GetOp):
                results[n] = yield from self._get_op(op)
            elif isinstance(op, SearchOp):
                qv = vectors[emb.queries[n]] if n in emb.queries else None
                results[n] = yield from self._search_op(op, qv)
            elif isinstance(op, ListNamespacesOp):
                results[n] = yield from self._list_ns_op(op)
        return results

    def _refresh(self, flag: bool | None) -> bool:
        if self.ttl_config is not None and flag is None:
            return bool(self.ttl_config.get("refresh_on_read", True))
        return bool(flag) if flag is not None else True

    def _touch(self, rows: list[Any], refresh: bool) -> DbOp[None]:
        if rows and (self.track_access or refresh):
            yield Query(TOUCH, (refresh, [r["prefix"] for r in rows], [r["key"] for r in rows]))

    def _get_op(self, op: GetOp) -> DbOp[Item | None]:
        p = ".".join(op.namespace)
        rows = yield Query(GET_ITEMS, ([p], [op.key]))
        yield from self._touch(rows, self._refresh(op.refresh_ttl))
        return _to_item(rows[0]) if rows else None

    def _ttl_of(self, op: PutOp) -> float | None:
        from langgraph.store.base import NOT_PROVIDED

        if op.ttl is NOT_PROVIDED:  # type: ignore[comparison-overlap]
            return self.ttl_config.get("default_ttl") if self.ttl_config else None
        return op.ttl

    def _field(self, value: Mapping[str, Any], name: str | None) -> Any:
        return value.get(name) if name else None

    def _put_op(
        self, puts: dict[int, PutOp], emb: _Embedded, vectors: np.ndarray, owner: str | None
    ) -> DbOp[None]:
        # last write per (namespace, key) wins, like LangGraph's stores
        latest: dict[tuple[str, str], int] = {}
        for n, op in puts.items():
            latest[(".".join(op.namespace), op.key)] = n
        vec_by_put: dict[int, list[tuple[str, np.ndarray]]] = {}
        texts_by_put: dict[int, list[str]] = {}
        for n, fname, t in emb.owners:
            vec_by_put.setdefault(n, []).append((fname, vectors[t]))
            texts_by_put.setdefault(n, []).append(emb.texts[t])
        if vec_by_put:
            self._require_vector("semantic indexing on put")
        deletes = [(k, puts[n]) for k, n in latest.items() if puts[n].value is None]
        upserts = [(k, n, puts[n]) for k, n in latest.items() if puts[n].value is not None]
        if deletes:
            yield Query(DELETE_ITEMS, ([k[0] for k, _ in deletes], [k[1] for k, _ in deletes]))
        if not upserts:
            return None
        encoded: dict[int, str] = {}
        for _, n, op in upserts:
            text = _dumps(op.value, "value")
            if len(text.encode()) > self.max_value_bytes:
                raise InvalidInput(
                    f"value for key {op.key!r} is {len(text.encode())} bytes; the limit is "
                    f"{self.max_value_bytes} (max_value_bytes)"
                )
            encoded[n] = text
        if self.dedup is not None:
            upserts = yield from self._dedup_op(upserts, vec_by_put, encoded)
            if not upserts:
                return None
        rows: list[list[Any]] = [[] for _ in range(7)]
        for (prefix, key), n, op in upserts:
            value = cast(Mapping[str, Any], op.value)
            src = self._field(value, self.source_field)
            imp = self._field(value, self.importance_field)
            texts = texts_by_put.get(n)
            for col, item in zip(
                rows,
                (
                    prefix,
                    key,
                    encoded[n],
                    _number(self._ttl_of(op), "ttl"),
                    src if isinstance(src, str) else None,
                    _number(imp, "importance") if isinstance(imp, int | float) else None,
                    " ".join(texts) if texts else " ".join(_strings(value)),
                ),
                strict=True,
            ):
                col.append(item)
        yield Query(UPSERT_ITEMS, (self.ts_config, owner, *rows))
        if self._has_vector:
            yield Query(DELETE_VECTORS, (rows[0], rows[1]))
        many = [
            (prefix, key, fname, self.dims, _Vec(v), owner)
            for (prefix, key), n, _op in upserts
            for fname, v in vec_by_put.get(n, [])
        ]
        if many:
            yield Query(INSERT_VECTOR, many=many)
        return None

    def _dedup_op(
        self,
        upserts: list[tuple[tuple[str, str], int, PutOp]],
        vec_by_put: dict[int, list[tuple[str, np.ndarray]]],
        encoded: dict[int, str],
    ) -> DbOp[list[tuple[tuple[str, str], int, PutOp]]]:
        assert self.dedup is not None
        args: dict[str, list[Any]] = {
            "ord": [],
            "prefix": [],
            "key": [],
            "source": [],
            "embedding": [],
        }
        for (prefix, key), n, op in upserts:
            src = self._field(cast(Mapping[str, Any], op.value), self.source_field)
            vecs = vec_by_put.get(n)
            args["ord"].append(n)
            args["prefix"].append(prefix)
            args["key"].append(key)
            args["source"].append(src if isinstance(src, str) else None)
            args["embedding"].append(_vec_text(vecs[0][1]) if vecs and self._has_vector else None)
        dims = self.dims if (self.dims and self._has_vector) else None
        if dims is None:  # keyword-only store: duplicate by source alone
            query = sql.SQL(
                FIND_DUPLICATES.split("    UNION ALL")[0]
                + ") AS d\nWHERE NOT EXISTS (SELECT 1 FROM memory_items e "
                "WHERE e.prefix = u.prefix AND e.key = u.key)"
            ).format(not_expired=sql.SQL(NOT_EXPIRED))
        else:
            query = sql.SQL(FIND_DUPLICATES).format(
                not_expired=sql.SQL(NOT_EXPIRED), dims=sql.Literal(dims)
            )
        dups = yield Query(query, {**args, "threshold": self.dedup.threshold})
        dup_of = {r["ord"]: r for r in dups}
        keep = []
        for entry in upserts:
            (prefix, _key), n, op = entry
            if n not in dup_of:
                keep.append(entry)
            elif self.dedup.action == "merge":
                imp = self._field(cast(Mapping[str, Any], op.value), self.importance_field)
                yield Query(
                    MERGE_DUPLICATE,
                    (
                        encoded[n],
                        imp if isinstance(imp, int | float) else None,
                        prefix,
                        dup_of[n]["dup_key"],
                    ),
                )
        return keep

    def _filter_sql(self, op: SearchOp) -> tuple[sql.Composable, list[Any]]:
        ns_sql, ns_p = _ns_condition("i.prefix", op.namespace_prefix)
        f_sql, f_p = compile_filter(op.filter)
        return sql.SQL("{} AND {} AND {}").format(ns_sql, f_sql, sql.SQL(NOT_EXPIRED)), ns_p + f_p

    def _search_op(self, op: SearchOp, qv: np.ndarray | None) -> DbOp[list[SearchItem]]:
        where, params = self._filter_sql(op)
        extras = getattr(op, "_extras", None)
        min_score = extras.min_score if isinstance(extras, SearchExtras) else None
        want = op.limit + op.offset
        if not op.query:
            q = sql.SQL(
                "SELECT {cols} FROM memory_items i WHERE {w} ORDER BY i.updated_at DESC, i.key "
                "LIMIT %s OFFSET %s"
            ).format(cols=sql.SQL(ITEM_COLUMNS), w=where)
            rows = yield Query(q, [*params, op.limit, op.offset])
            yield from self._touch(rows, self._refresh(op.refresh_ttl))
            return [cast(SearchItem, _to_item(r, SearchItem)) for r in rows]
        mode = self._mode(op)
        pool = want * (4 if self.ranking.active else 1)
        vec_hits: list[tuple[Any, float]] = []
        kw_hits: list[tuple[Any, float]] = []
        if mode in ("vector", "hybrid"):
            self._require_vector("vector search")
            assert qv is not None
            vec_hits = yield from self._vector_hits(
                where, params, qv, max(pool, want * 2 if mode == "hybrid" else pool)
            )
            if min_score is not None:
                vec_hits = [(r, s) for r, s in vec_hits if s >= min_score]
        if mode in ("keyword", "hybrid"):
            kw_hits = yield from self._keyword_hits(
                where, params, op.query, max(pool, want * 2 if mode == "hybrid" else pool)
            )
            if min_score is not None and mode == "keyword":
                kw_hits = [(r, s) for r, s in kw_hits if s >= min_score]
        if mode == "hybrid":
            fused: dict[tuple[str, str], list[Any]] = {}
            for hits in (vec_hits, kw_hits):
                for rank, (r, _s) in enumerate(hits):
                    entry = fused.setdefault((r["prefix"], r["key"]), [r, 0.0])
                    entry[1] += 1.0 / (RRF_K + rank + 1)
            scored = [(r, s) for r, s in fused.values()]
        else:
            scored = vec_hits if mode == "vector" else kw_hits
        scored = self._rank(scored)[op.offset : want]
        rows = [r for r, _ in scored]
        yield from self._touch(rows, self._refresh(op.refresh_ttl))
        return [cast(SearchItem, _to_item(r, SearchItem, float(s))) for r, s in scored]

    def _rank(self, scored: list[tuple[Any, float]]) -> list[tuple[Any, float]]:
        rk = self.ranking
        if rk.active:
            now = datetime.now(UTC)
            out = []
            for r, s in scored:
                imp = r.get("importance")
                imp = min(max(float(imp), 0.0), 1.0) if imp is not None else 0.0
                age_days = max((now - r["updated_at"]).total_seconds() / 86400.0, 0.0)
                rec = 0.5 ** (age_days / rk.half_life_days)
                w = 1 - rk.importance_weight - rk.recency_weight
                out.append((r, w * s + rk.importance_weight * imp + rk.recency_weight * rec))
            scored = out
        return sorted(scored, key=lambda rs: -rs[1])

    def _vector_hits(
        self, where: sql.Composable, params: list[Any], qv: np.ndarray, k: int
    ) -> DbOp[list[tuple[Any, float]]]:
        """Walk the HNSW index with iterative scans (filters can't starve the result); if a
        very selective filter still leaves fewer than ``k`` rows, rank its matches exactly."""
        fan = max(len(self.fields), 1)
        cand = max(k * fan, 1)
        vt = _Vec(qv)
        d = sql.Literal(self.dims)
        # enable_sort=off: JSON filters have no statistics, so the planner guesses they are
        # very selective and sorts the matches; we want the ordered index walk instead.
        yield Query(SET_ITERATIVE, (str(max(self.ef_search, cand)),))
        indexed = sql.SQL("v.embedding::vector({d}) <=> %b::vector({d})").format(d=d)
        rows = yield Query(self._vector_sql(indexed, where), [vt, *params, vt, cand, k])
        yield Query(RESET_SORT)
        if len(rows) < k and params:
            exact = sql.SQL("cosine_distance(v.embedding, %b::vector)")
            rows = yield Query(self._vector_sql(exact, where), [vt, *params, vt, cand, k])
        return [(r, 1.0 - float(r["dist"])) for r in rows]

    def _vector_sql(self, dist: sql.Composable, where: sql.Composable) -> sql.Composed:
        return sql.SQL(
            "WITH c AS MATERIALIZED ("
            " SELECT v.prefix, v.key, {dist} AS dist"
            " FROM memory_vectors v JOIN memory_items i ON i.prefix = v.prefix AND i.key = v.key"
            " WHERE v.dims = {d} AND {w}"
            " ORDER BY {dist} LIMIT %s)"
            " SELECT {cols}, i.importance, min(c.dist) AS dist FROM c"
            " JOIN memory_items i ON i.prefix = c.prefix AND i.key = c.key"
            " GROUP BY i.prefix, i.key ORDER BY dist LIMIT %s"
        ).format(dist=dist, d=sql.Literal(self.dims), w=where, cols=sql.SQL(ITEM_COLUMNS))

    def _keyword_hits(
        self, where: sql.Composable, params: list[Any], query: str, k: int
    ) -> DbOp[list[tuple[Any, float]]]:
        if self._has_bm25:
            score = sql.SQL("(i.search_text <@> to_bm25query(%s, {idx}))").format(
                idx=sql.Literal(self.bm25_index)
            )
            q = sql.SQL(
                "SELECT {cols}, i.importance, -{s} AS rank FROM memory_items i"
                " WHERE {s} < 0 AND {w} ORDER BY {s} LIMIT %s"
            ).format(cols=sql.SQL(ITEM_COLUMNS), s=score, w=where)
            rows = yield Query(q, [query, query, *params, query, k])
            return [(r, float(r["rank"])) for r in rows]
        q = sql.SQL(
            "SELECT {cols}, i.importance, ts_rank_cd(i.search_tsv, q) AS rank"
            " FROM memory_items i, websearch_to_tsquery(%s::regconfig, %s) AS q"
            " WHERE i.search_tsv @@ q AND {w} ORDER BY rank DESC LIMIT %s"
        ).format(cols=sql.SQL(ITEM_COLUMNS), w=where)
        rows = yield Query(q, [self.ts_config, query, *params, k])
        return [(r, float(r["rank"])) for r in rows]

    def _list_ns_op(self, op: ListNamespacesOp) -> DbOp[list[tuple[str, ...]]]:
        conds: list[sql.Composable] = [sql.SQL(NOT_EXPIRED)]
        params: list[Any] = []
        for c in op.match_conditions or ():
            s, p = _match_condition(c)
            conds.append(s)
            params.extend(p)
        col = sql.SQL("i.prefix")
        if op.max_depth is not None:
            if op.max_depth < 1:
                raise InvalidInput("max_depth must be >= 1")
            col = sql.SQL("array_to_string((string_to_array(i.prefix, '.'))[1:%s], '.')")
            params = [op.max_depth, *params]
        q = sql.SQL(
            "SELECT DISTINCT {col} AS ns FROM memory_items i WHERE {w} "
            "ORDER BY ns LIMIT %s OFFSET %s"
        ).format(col=col, w=sql.SQL(" AND ").join(conds))
        rows = yield Query(q, [*params, op.limit, op.offset])
        return [tuple(r["ns"].split(".")) for r in rows]

    # ---- maintenance --------------------------------------------------------------------

    def sweep_op(self) -> DbOp[int]:
        rows = yield Query(SWEEP + " RETURNING 1 AS x")
        return len(rows)

    def delete_by_source_op(self, namespace_prefix: tuple[str, ...], source: str) -> DbOp[int]:
        ns = validate_namespace(namespace_prefix)
        if not isinstance(source, str) or not source:
            raise InvalidInput("source must be a non-empty string")
        p = ".".join(ns)
        rows = yield Query(DELETE_BY_SOURCE + " RETURNING 1 AS x", (p, _prefix_like(p), source))
        return len(rows)


def search_op(
    namespace_prefix: tuple[str, ...],
    *,
    query: str | None,
    filter: dict[str, Any] | None,
    limit: int,
    offset: int,
    refresh_ttl: bool | None,
    mode: SearchMode | None,
    min_score: float | None,
) -> SearchOp:
    """A SearchOp carrying our extras (mode, min_score) as an attribute."""
    op = SearchOp(tuple(namespace_prefix), filter, limit, offset, query, refresh_ttl)  # type: ignore[arg-type]
    if mode is not None or min_score is not None:
        if mode is not None and mode not in ("vector", "keyword", "hybrid"):
            raise InvalidInput(f"mode must be vector, keyword or hybrid: {mode!r}")
        op = _ExtSearchOp(*op)
        op._extras = SearchExtras(mode, _number(min_score, "min_score"))  # type: ignore[attr-defined]
    return op


class _ExtSearchOp(SearchOp):
    """SearchOp subclass that can carry ``_extras`` (NamedTuple instances have no __dict__)."""
