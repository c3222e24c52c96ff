"""The store's logic, shared by :class:`PgMemoryStore` and :class:`AsyncPgMemoryStore`.

A batch goes through three steps; only the middle one differs between the two stores:

1. :meth:`StoreCore.plan` validates every op (pure) and collects the texts to embed;
2. the store calls its embedder (sync or async) and :meth:`StoreCore.vectors` checks them;
3. :meth:`StoreCore.batch_op` is a sans-IO op (see ``_ops``) run in one transaction: all
   reads first (as LangGraph's stores do), then the writes.

Embedding happens before the transaction starts, so a failing embedder writes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
from langgraph.store.base import NOT_PROVIDED, GetOp, ListNamespacesOp, Op, PutOp, SearchOp
from langgraph.store.base.embed import get_text_at_path, tokenize_path
from psycopg import sql
from psycopg.rows import DictRow

from .._ops import Op as DbOp
from .._ops import Query
from ..errors import ExtensionMissing, InvalidInput
from . import sql as q
from .background import AccessLog, log
from .config import SEARCH_MODES, SearchMode, StoreConfig
from .filters import and_, compile_filter, match_condition, namespace_condition
from .items import Page, to_item
from .ops import PgListOp, PgPutOp, Plan, PutPlan, SearchPlan, extras_of
from .scoring import decode_cursor, encode_cursor, fingerprint
from .search import Reads, Searching
from .validate import (
    check_count,
    check_key,
    check_number,
    check_ttl,
    check_vectors,
    encode_value,
    validate_namespace,
)
from .writes import Writing

__all__ = ["SWEEP_CHUNK", "StoreCore"]

#: Items a sweep deletes per transaction.
SWEEP_CHUNK = 5000


# --------------------------------------------------------------------------- the core


class StoreCore(Searching, Writing):
    """Configuration, validation and the sans-IO ops of one store."""

    def __init__(self, cfg: StoreConfig) -> None:
        self.cfg = cfg
        self.vec = q.VectorSQL(cfg) if cfg.dims else None
        self.has_vector: bool | None = None  # set by setup: pgvector and memory_vectors exist
        self.has_bm25 = False
        self.access = AccessLog()

    # ---- setup -------------------------------------------------------------------------

    def setup_op(self) -> DbOp[None]:
        """Detect pgvector and pg_textsearch and create this store's indexes if missing.

        Index creation is best effort (a role without DDL rights still gets a working, slower
        store; the server logs why): a BM25 index that could not be built turns BM25 off.
        """
        rows = yield Query(q.HAS_EXTENSIONS)
        has_vector, has_bm25 = bool(rows[0]["vector"]), _bm25_usable(rows[0]["bm25_version"])
        wanted: list[tuple[str, sql.Composed]] = []
        if has_bm25:
            wanted.append((self.cfg.bm25_index, q.create_bm25(self.cfg)))
        if has_vector and self.vec is not None:
            wanted.append((self.cfg.hnsw_index, self.vec.create_index()))
        for name, ddl in wanted:
            rows = yield Query(q.INDEX_EXISTS, (name,))
            if rows[0]["ok"]:
                continue
            yield Query(q.LOCK_INDEX, (name,))
            yield Query(q.try_ddl(ddl))
            rows = yield Query(q.INDEX_EXISTS, (name,))
            if not rows[0]["ok"]:
                log.warning("memory store: could not create index %s; see the server log", name)
                has_bm25 = has_bm25 and name != self.cfg.bm25_index
        self.has_vector, self.has_bm25 = has_vector, has_bm25

    def _require_vector(self, feature: str) -> None:
        if self.has_vector is False:  # None: not set up yet, plan() checks again after setup
            raise ExtensionMissing("vector", feature)

    # ---- plan (pure) -----------------------------------------------------------------

    def plan(
        self, ops: Iterable[Op], *, owner: str | None = None, tenant: str | None = None
    ) -> Plan:
        """Validate every op and collect the texts to embed; raises before any IO. Puts are
        owned by ``owner`` unless they carry their own (:class:`PgPutOp`)."""
        plan = Plan(list(ops), tenant)
        for n, op in enumerate(plan.ops):
            if isinstance(op, PutOp):
                put = self.check_put(op)
                put.owner = op.owner if isinstance(op, PgPutOp) else owner
                plan.puts[n] = put
                for fname, text in put.fields:
                    plan.doc_slots.append((n, fname))
                    plan.docs.append(text)
            elif isinstance(op, SearchOp):
                search = self.check_search(op)
                if search.embed_query:
                    text = cast(str, op.query)
                    if text not in plan.queries:
                        plan.queries.append(text)
                    plan.query_slot[n] = plan.queries.index(text)
                plan.searches[n] = search
            else:
                self.check_read(op)
        if plan.docs:
            self._require_vector("semantic indexing on put")
        lists = any(isinstance(op, ListNamespacesOp) for op in plan.ops)
        if plan.searches and not plan.puts and not lists:
            plan.searches[max(plan.searches)].last = True
        return plan

    def check(self, op: Op) -> None:
        """Validate one op (the async store does this when a call is queued, so a bad op
        fails its own caller only)."""
        if isinstance(op, PutOp):
            self.check_put(op)
        elif isinstance(op, SearchOp):
            self.check_search(op)
        else:
            self.check_read(op)

    def check_read(self, op: Op) -> None:
        if isinstance(op, GetOp):
            validate_namespace(op.namespace)
            check_key(op.key)
        elif isinstance(op, ListNamespacesOp):
            for c in op.match_conditions or ():
                match_condition(c)
            if op.max_depth is not None:
                check_count(op.max_depth, "max_depth")
                if op.max_depth < 1:
                    raise InvalidInput("max_depth must be >= 1")
            check_count(op.limit, "limit")
            check_count(op.offset, "offset", most=10**9)
            if isinstance(op, PgListOp) and op.extras.cursor is not None:
                decode_cursor(op.extras.cursor, "ns")
        elif not isinstance(op, PutOp | SearchOp):
            raise InvalidInput(f"unknown store op {type(op).__name__}")

    def check_put(self, op: PutOp) -> PutPlan:
        ns = validate_namespace(op.namespace)
        key = check_key(op.key)
        prefix = ".".join(ns)
        if op.value is None:
            return PutPlan(prefix, key, None)
        cfg = self.cfg
        encoded = encode_value(op.value, key, cfg.max_value_bytes)
        value = op.value
        ttl = cfg.default_ttl if op.ttl is NOT_PROVIDED else op.ttl  # type: ignore[comparison-overlap]
        src = value.get(cfg.source_field) if cfg.source_field else None
        imp = value.get(cfg.importance_field) if cfg.importance_field else None
        plan = PutPlan(
            prefix,
            key,
            encoded,
            ttl=check_ttl(ttl),
            source=src if isinstance(src, str) and "\x00" not in src else None,
            importance=(
                check_number(imp, "importance")
                if isinstance(imp, int | float) and not isinstance(imp, bool)
                else None
            ),
        )
        paths = self._index_paths(op.index)
        if paths is None:
            return plan  # index=False: neither embedded nor searchable by query
        texts = self._texts(value, paths)
        plan.text = " ".join(
            " ".join(_strings(value)) if path == "$" else text for path, text in texts
        )
        if cfg.embeddings is not None:
            plan.fields = texts
        return plan

    def _index_paths(self, index: Any) -> list[str] | None:
        if index is False:
            return None
        if index is None:
            return list(self.cfg.fields)
        if not isinstance(index, list | tuple) or not all(isinstance(p, str) and p for p in index):
            raise InvalidInput(f"index must be False, None or a list of field paths: {index!r}")
        for path in index:
            if path != "$":
                tokenize_path(path)
        return list(index)

    @staticmethod
    def _texts(value: Mapping[str, Any], paths: list[str]) -> list[tuple[str, str]]:
        """(field name, text) of each indexed field, as LangGraph's stores embed them: ``$``
        is the whole value as JSON, a path matching several texts gives ``path.0``, ..."""
        out: list[tuple[str, str]] = []
        for path in paths:
            texts = [t for t in get_text_at_path(value, path) if t]
            if len(texts) == 1:
                out.append((path, texts[0]))
            else:
                out.extend((f"{path}.{i}", t) for i, t in enumerate(texts))
        return out

    def check_search(self, op: SearchOp) -> SearchPlan:
        cfg = self.cfg
        ns = validate_namespace(op.namespace_prefix, allow_empty=True, what="namespace_prefix")
        ext = extras_of(op)
        check_count(op.limit, "limit")
        check_count(op.offset, "offset", most=10**9)
        if op.query is not None and not isinstance(op.query, str):
            raise InvalidInput(f"query must be a string, got {type(op.query).__name__}")
        if op.query and "\x00" in op.query:
            raise InvalidInput("query contains a NUL character")
        if ext.mode is not None and ext.mode not in SEARCH_MODES:
            raise InvalidInput(f"mode must be one of {SEARCH_MODES}, got {ext.mode!r}")
        min_score = (
            None
            if ext.min_score is None
            else check_number(ext.min_score, "min_score", low=0, high=1)
        )
        vector = None
        if ext.vector is not None:
            if not cfg.dims:
                raise InvalidInput("search(vector=...) needs a store with an index (dims)")
            vector = check_vectors([ext.vector], 1, cfg.dims, "vector")[0]
        mode = self._mode(op.query or None, vector is not None, ext.mode)
        where = and_(
            namespace_condition(ns),
            compile_filter(op.filter),
            (q.LIVE, []) if cfg.omit_expired else None,
        )
        fp = fingerprint(
            ns,
            op.filter,
            op.query if mode else None,
            mode,
            vector.tolist() if vector is not None else None,
        )
        cursor = None
        if ext.cursor is not None:
            if op.offset:
                raise InvalidInput("pass cursor or offset, not both")
            cursor = decode_cursor(ext.cursor, fp)
        plan = SearchPlan(mode, where, fp, cursor, min_score, vector, filtered=bool(op.filter))
        if mode in ("vector", "hybrid"):
            self._require_vector(f"{mode} search")
            plan.embed_query = vector is None
        return plan

    def _mode(
        self, query: str | None, has_vector: bool, asked: SearchMode | None
    ) -> SearchMode | None:
        """The mode a search runs in; None means a plain listing (no usable query)."""
        mode = asked or self.cfg.search_mode
        if has_vector:
            if mode == "keyword":
                raise InvalidInput("mode='keyword' takes a query, not a vector")
            return mode if query else "vector"
        if not query:
            return None
        if mode == "keyword":
            return "keyword"
        return mode if self.cfg.embeddings is not None else None  # upstream: query ignored

    def vectors(
        self, plan: Plan, docs: Any, queries: Sequence[Any]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Check what the embedder returned (one finite vector of ``dims`` per text)."""
        dims = self.cfg.dims
        doc_arr = check_vectors(docs, len(plan.docs), dims, "the embedder (index.embed)")
        qs = [check_vectors([v], 1, dims, "the embedder (embed_query)")[0] for v in queries]
        if len(qs) != len(plan.queries):
            raise InvalidInput(
                f"the embedder returned {len(qs)} query vectors for {len(plan.queries)} queries"
            )
        return doc_arr, qs

    # ---- the batch op --------------------------------------------------------------------

    def batch_op(
        self, plan: Plan, doc_vectors: np.ndarray, query_vectors: list[np.ndarray]
    ) -> DbOp[list[Any]]:
        """Reads (gets, searches, namespace listings), then writes, in one transaction.
        A put's result is its :class:`PutResult` (the stores' ``batch`` turns it into None)."""
        results: list[Any] = [None] * len(plan.ops)
        reads: Reads = []
        gets = {n: op for n, op in enumerate(plan.ops) if isinstance(op, GetOp)}
        if gets:
            yield from self._gets_op(gets, results, reads)
        for n, splan in plan.searches.items():
            qv = splan.vector
            if qv is None and n in plan.query_slot:
                qv = query_vectors[plan.query_slot[n]]
            search = cast(SearchOp, plan.ops[n])
            results[n] = yield from self._search_op(search, splan, qv, reads)
        for n, op in enumerate(plan.ops):
            if isinstance(op, ListNamespacesOp):
                results[n] = yield from self._list_ns_op(op)
        if plan.puts:
            yield from self._put_op(plan, doc_vectors, results)
        for rows, refresh in reads:
            self.access.record(rows, plan.tenant, count=self.cfg.track_access, refresh=refresh)
        return results

    def _gets_op(
        self,
        gets: dict[int, GetOp],
        results: list[Any],
        reads: Reads,
    ) -> DbOp[None]:
        keys = {(".".join(op.namespace), op.key) for op in gets.values()}
        stmt = q.GET_ITEMS + sql.SQL(" WHERE ") + q.LIVE if self.cfg.omit_expired else q.GET_ITEMS
        rows = yield Query(stmt, ([k[0] for k in keys], [k[1] for k in keys]))
        found = {(r["prefix"], r["key"]): r for r in rows}
        by_flag: dict[bool, list[DictRow]] = {True: [], False: []}
        for n, op in gets.items():
            row = found.get((".".join(op.namespace), op.key))
            results[n] = to_item(row) if row is not None else None
            if row is not None:
                by_flag[bool(op.refresh_ttl)].append(row)
        reads.extend((rows, flag) for flag, rows in by_flag.items() if rows)

    def _list_ns_op(self, op: ListNamespacesOp) -> DbOp[Page[tuple[str, ...]]]:
        conds = [match_condition(c) for c in op.match_conditions or ()]
        if self.cfg.omit_expired:
            conds.append((q.LIVE, []))
        where, params = and_(*conds)
        after = None
        if isinstance(op, PgListOp) and op.extras.cursor is not None:
            after = decode_cursor(op.extras.cursor, "ns")["a"]
        depth = [op.max_depth] if op.max_depth is not None else []
        rows = yield Query(
            q.list_namespaces(op.max_depth is not None, where),
            [*depth, *params, after, after, op.limit, op.offset],
        )
        names = [r["ns"] for r in rows]
        nxt = (
            encode_cursor({"f": "ns", "a": names[-1]})
            if op.limit and len(names) == op.limit
            else None
        )
        return Page((tuple(n.split(".")) for n in names), nxt)

    # ---- maintenance ---------------------------------------------------------------------

    @staticmethod
    def sweep_op() -> DbOp[int]:
        """Delete one chunk of expired items; call until it returns less than SWEEP_CHUNK."""
        rows = yield Query(q.sweep(SWEEP_CHUNK))
        return int(rows[0]["n"])

    @staticmethod
    def delete_by_source_op(namespace_prefix: Any, source: Any) -> DbOp[int]:
        ns = validate_namespace(namespace_prefix, what="namespace_prefix")
        if not isinstance(source, str) or not source or "\x00" in source:
            raise InvalidInput(f"source must be a non-empty string, got {source!r:.40}")
        cond, params = namespace_condition(ns)
        rows = yield Query(q.delete_by_source(cond), [*params, source])
        return int(rows[0]["n"])


#: pg_textsearch before 1.3 keeps its corpus statistics in shared memory only: after a
#: server restart every BM25 query returns nothing (timescale/pg_textsearch#350, #374; seen
#: with the embedded server's 0.6.1). Older versions are left alone: ts_rank ranks instead.
BM25_MIN_VERSION = (1, 3)


def _bm25_usable(version: str | None) -> bool:
    if not version:
        return False
    parts = [int(p) for p in re.findall(r"\d+", version)[:2]]
    return tuple(parts) >= BM25_MIN_VERSION


def _strings(value: Any) -> Iterable[str]:
    """Every string leaf of a JSON value: the keyword text of ``$`` (the whole value)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)
