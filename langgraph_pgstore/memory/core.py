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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias, cast

import numpy as np
from langgraph.store.base import (
    NOT_PROVIDED,
    GetOp,
    ListNamespacesOp,
    MatchCondition,
    NotProvided,
    Op,
    PutOp,
    SearchOp,
)
from langgraph.store.base.embed import get_text_at_path, tokenize_path
from psycopg import sql
from psycopg.rows import DictRow

from .._ops import Op as DbOp
from .._ops import Query
from ..errors import ExtensionMissing, InvalidInput
from . import sql as q
from .background import AccessLog, log
from .config import SEARCH_MODES, SearchMode, StoreConfig
from .filters import compile_filter, match_condition, namespace_condition
from .items import MemorySearchItem, Page, PutResult, to_item, to_search_item
from .scoring import (
    Candidate,
    decode_cursor,
    encode_cursor,
    fingerprint,
    keyword_terms,
    rank,
    relevance,
    similarity,
)
from .validate import (
    NamespaceError,
    check_count,
    check_key,
    check_number,
    check_ttl,
    check_vectors,
    encode_value,
    validate_namespace,
)
from .vectors import Vec, vec_text

__all__ = [
    "ListExtras",
    "PgListOp",
    "PgPutOp",
    "PgSearchOp",
    "Plan",
    "SearchExtras",
    "StoreCore",
    "delete_op",
    "get_op",
    "list_op",
    "put_op",
    "search_op",
]

IndexArg: TypeAlias = Literal[False] | list[str] | None
TTLArg: TypeAlias = float | NotProvided | None
#: Items a sweep deletes per transaction.
SWEEP_CHUNK = 5000


# --------------------------------------------------------------------------- ops


@dataclass(frozen=True, slots=True)
class SearchExtras:
    """What our ``search`` takes beyond LangGraph's."""

    mode: SearchMode | None = None
    min_score: float | None = None
    cursor: str | None = None
    vector: Sequence[float] | None = None


class PgPutOp(PutOp):
    """A ``PutOp`` carrying its ``owner``, resolved where the call was made (the async store
    batches calls of different runs together)."""

    owner: str | None


class PgSearchOp(SearchOp):
    """A ``SearchOp`` carrying :class:`SearchExtras` (``extras``); equal ops with other
    extras are different searches, so batching never merges them."""

    extras: SearchExtras


@dataclass(frozen=True, slots=True)
class ListExtras:
    cursor: str | None = None


class PgListOp(ListNamespacesOp):
    """A ``ListNamespacesOp`` with a ``cursor`` (keyset paging)."""

    extras: ListExtras


def _extras(op: SearchOp) -> SearchExtras:
    return op.extras if isinstance(op, PgSearchOp) else SearchExtras()


def get_op(namespace: Any, key: Any, refresh: bool) -> GetOp:
    return GetOp(validate_namespace(namespace), str(key), refresh)


def put_op(namespace: Any, key: Any, value: Any, index: IndexArg, ttl: TTLArg) -> PutOp:
    """``put``'s op; the root label "langgraph" is LangGraph's own (refused here, as
    upstream, but accepted from ``batch``)."""
    ns = validate_namespace(namespace)
    if ns[0] == "langgraph":
        raise NamespaceError(f'namespace root label cannot be "langgraph": {ns!r}')
    return PutOp(ns, str(key), value, index, ttl=ttl)  # type: ignore[arg-type]


def delete_op(namespace: Any, key: Any) -> PutOp:
    return PutOp(validate_namespace(namespace), str(key), None)


def search_op(
    namespace_prefix: Any,
    *,
    query: str | None = None,
    filter: dict[str, Any] | None = None,
    limit: int = 10,
    offset: int = 0,
    refresh: bool = True,
    mode: SearchMode | None = None,
    min_score: float | None = None,
    cursor: str | None = None,
    vector: Sequence[float] | None = None,
) -> SearchOp:
    ns = validate_namespace(namespace_prefix, allow_empty=True, what="namespace_prefix")
    extras = SearchExtras(mode, min_score, cursor, vector)
    if extras == SearchExtras():
        return SearchOp(ns, filter, limit, offset, query, refresh)
    op = PgSearchOp(ns, filter, limit, offset, query, refresh)
    op.extras = extras
    return op


def list_op(
    prefix: Any, suffix: Any, max_depth: int | None, limit: int, offset: int, cursor: str | None
) -> ListNamespacesOp:
    conditions = tuple(
        MatchCondition(
            cast(Literal["prefix", "suffix"], kind),
            validate_namespace(path, allow_empty=True, what=kind),
        )
        for kind, path in (("prefix", prefix), ("suffix", suffix))
        if path
    )
    if cursor is None:
        return ListNamespacesOp(conditions, max_depth, limit, offset)
    op = PgListOp(conditions, max_depth, limit, offset)
    op.extras = ListExtras(cursor)
    return op


# --------------------------------------------------------------------------- plans


@dataclass(slots=True)
class PutPlan:
    """One put, validated: everything the write needs, computed before any IO."""

    prefix: str
    key: str
    encoded: str | None  # None: delete
    ttl: float | None = None
    source: str | None = None
    importance: float | None = None
    text: str | None = None  # keyword text; None: not searchable by query
    fields: list[tuple[str, str]] = field(default_factory=list)  # (field name, text to embed)
    owner: str | None = None  # owner_id of the row (see ``tenancy``)


@dataclass(slots=True)
class SearchPlan:
    """One search, validated: its mode (None: a plain listing), terms and paging."""

    mode: SearchMode | None
    where: tuple[sql.Composable, list[Any]]
    fp: str
    cursor: dict[str, Any] | None
    min_score: float | None
    vector: np.ndarray | None = None
    embed_query: bool = False  # the query text needs a vector from the embedder
    filtered: bool = False  # value filters, whose selectivity the planner can't estimate


@dataclass(slots=True)
class Plan:
    ops: list[Op]
    tenant: str | None = None  # the tenant the batch acts for: its reads' notes are its
    puts: dict[int, PutPlan] = field(default_factory=dict)
    searches: dict[int, SearchPlan] = field(default_factory=dict)
    docs: list[str] = field(default_factory=list)  # texts to embed as documents
    doc_slots: list[tuple[int, str]] = field(default_factory=list)  # (put index, field name)
    queries: list[str] = field(default_factory=list)  # texts to embed as queries
    query_slot: dict[int, int] = field(default_factory=dict)  # search index -> queries index

    @property
    def transaction(self) -> bool:
        """Whether the batch needs one transaction: writes do (all or nothing), and so do
        filtered vector searches (their planner knobs are transaction-local); plain reads
        run in autocommit, one round trip less each way, as LangGraph's stores do."""
        return bool(self.puts) or any(
            s.filtered and s.mode in ("vector", "hybrid") for s in self.searches.values()
        )


# --------------------------------------------------------------------------- the core


class StoreCore:
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
        ext = _extras(op)
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
        where = _and(
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
        reads: list[tuple[list[DictRow], bool]] = []
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
        reads: list[tuple[list[DictRow], bool]],
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
        where, params = _and(*conds)
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

    # ---- search --------------------------------------------------------------------------

    def _search_op(
        self,
        op: SearchOp,
        plan: SearchPlan,
        qv: np.ndarray | None,
        reads: list[tuple[list[DictRow], bool]],
    ) -> DbOp[Page[MemorySearchItem]]:
        if plan.mode is None:
            return (yield from self._listing_op(op, plan, reads))
        cfg = self.cfg
        cur = plan.cursor or {}
        seen = int(cur.get("n", op.offset))
        want = seen + op.limit
        pool = want * (4 if cfg.ranking.active else 1)
        if plan.mode == "hybrid":
            pool = max(pool, 2 * want)
        terms: tuple[str, list[str]] | None = None
        if plan.mode in ("keyword", "hybrid"):
            terms = keyword_terms(cast(str, op.query))
        found: list[Candidate] = []
        if pool and (qv is not None or (terms is not None and terms[1])):
            rows = yield from self._hits(plan, qv, pool, terms)
            for r in rows:
                sim = None if r["dist"] is None else similarity(float(r["dist"]), cfg.distance)
                cov = r.get("kw_cov")
                rel = relevance(plan.mode, sim, cov, cfg.ranking.keyword_weight)
                if rel is None or (plan.mode == "keyword" and not cov):
                    continue  # no vector (index=False), or no query term
                tiebreak = float(r["kw_rank"]) if plan.mode == "keyword" else 0.0
                found.append(Candidate(r, rel, tiebreak))
        cands = [c for c in found if plan.min_score is None or c.relevance >= plan.min_score]
        now = datetime.fromtimestamp(cur["t"], UTC) if "t" in cur else datetime.now(UTC)
        ordered = rank(cands, cfg.ranking, now)
        if plan.cursor is not None:
            after = (-cur["s"], -cur["r"], cur["p"], cur["k"])
            ordered = [c for c in ordered if c.sort_key > after]
        else:
            ordered = ordered[op.offset :]
        page = ordered[: op.limit]
        reads.append(([cast(DictRow, c.row) for c in page], bool(op.refresh_ttl)))
        nxt = None
        if op.limit and len(page) == op.limit:
            last = page[-1]
            nxt = encode_cursor(
                {
                    "f": plan.fp,
                    "s": last.score,
                    "r": last.tiebreak,
                    "p": last.row["prefix"],
                    "k": last.row["key"],
                    "n": seen + op.limit,
                    "t": now.timestamp(),
                }
            )
        return Page((to_search_item(c.row, c.score, c.relevance) for c in page), nxt)

    def _listing_op(
        self, op: SearchOp, plan: SearchPlan, reads: list[tuple[list[DictRow], bool]]
    ) -> DbOp[Page[MemorySearchItem]]:
        """No usable query: newest first, like LangGraph's stores; keyset on (updated_at,
        namespace, key) when paging by cursor."""
        where, params = plan.where
        if plan.cursor is not None:
            c = plan.cursor
            where, params = _and(
                (where, params),
                (
                    sql.SQL(
                        "(i.updated_at < %s::timestamptz OR (i.updated_at = %s::timestamptz"
                        " AND (i.prefix, i.key) > (%s, %s)))"
                    ),
                    [c["u"], c["u"], c["p"], c["k"]],
                ),
            )
        rows = yield Query(q.list_items(where), [*params, op.limit, op.offset])
        reads.append((rows, bool(op.refresh_ttl)))
        nxt = None
        if op.limit and len(rows) == op.limit:
            last = rows[-1]
            nxt = encode_cursor(
                {
                    "f": plan.fp,
                    "u": last["updated_at"].isoformat(),
                    "p": last["prefix"],
                    "k": last["key"],
                }
            )
        return Page((to_search_item(r) for r in rows), nxt)

    def _hits(
        self,
        plan: SearchPlan,
        qv: np.ndarray | None,
        k: int,
        terms: tuple[str, list[str]] | None,
    ) -> DbOp[list[DictRow]]:
        """The candidates of a search with a query, in one statement (see
        :func:`.sql.search_statement`). The vector side walks the HNSW index with iterative
        scans (filters can't starve it); if a very selective filter still leaves it fewer
        than ``k`` items, the statement runs again ranking every match exactly."""
        where, params = plan.where
        vector = qv is not None and plan.mode in ("vector", "hybrid")
        keyword = terms is not None and bool(terms[1])
        bm25 = self.cfg.bm25_index if keyword and self.has_bm25 else None
        args: list[Any] = []
        if keyword:
            assert terms is not None
            args += [self.cfg.ts_config, terms[0], terms[1], self.cfg.ts_config]
        if vector:
            assert self.vec is not None and qv is not None
            vt = Vec(qv)
            # any field of an item may come up; a half-precision order is re-ranked
            fan = max(len(self.cfg.fields), 1) * (2 if self.cfg.vector_type == "halfvec" else 1)
            args += [vt, *params, vt, k * fan, k]
            yield Query(q.set_iterative(max(self.cfg.ef_search, k * fan), knobs=plan.filtered))
        if keyword:
            assert terms is not None
            text = " ".join(terms[1])
            args += [text, *params, text, k] if bm25 else [*params, k]
        if vector and keyword:
            args.append(vt)
        stmt = q.search_statement(self.vec, where, vector=vector, keyword=keyword, bm25_index=bm25)
        rows = yield Query(stmt, args)
        if vector and plan.filtered:
            yield Query(q.RESET_KNOBS)
        if vector and params and sum(r["by_vector"] for r in rows) < k:
            stmt = q.search_statement(
                self.vec, where, vector=True, keyword=keyword, exact=True, bm25_index=bm25
            )
            rows = yield Query(stmt, args)
        return rows

    # ---- writes --------------------------------------------------------------------------

    def _put_op(self, plan: Plan, vectors: np.ndarray, results: list[Any]) -> DbOp[None]:
        latest: dict[tuple[str, str], int] = {}  # last write per item wins, as upstream
        for n, put in plan.puts.items():
            latest[(put.prefix, put.key)] = n
        vec_of: dict[int, list[tuple[str, np.ndarray]]] = {}
        for (n, fname), v in zip(plan.doc_slots, vectors, strict=True):
            vec_of.setdefault(n, []).append((fname, v))
        deletes = sorted(k for k, n in latest.items() if plan.puts[n].encoded is None)
        upserts = sorted((k, n) for k, n in latest.items() if plan.puts[n].encoded is not None)
        outcome: dict[int, PutResult] = {}
        if deletes:
            yield Query(q.DELETE_ITEMS, ([k[0] for k in deletes], [k[1] for k in deletes]))
            for k in deletes:
                outcome[latest[k]] = PutResult("deleted", k[1])
        if upserts and self.cfg.dedup is not None:
            dups = yield from self._dedup_op(
                [plan.puts[n] for _, n in upserts], [n for _, n in upserts], vec_of
            )
            for n, res in dups.items():
                outcome[n] = res
            upserts = [(k, n) for k, n in upserts if n not in dups]
        if upserts:
            puts = [plan.puts[n] for _, n in upserts]
            rows = yield Query(
                q.UPSERT_ITEMS,
                (
                    self.cfg.ts_config,
                    [p.prefix for p in puts],
                    [p.key for p in puts],
                    [p.encoded for p in puts],
                    [p.ttl for p in puts],
                    [p.source for p in puts],
                    [p.importance for p in puts],
                    [p.text for p in puts],
                    [p.owner for p in puts],
                ),
            )
            inserted = {(r["prefix"], r["key"]) for r in rows if r["inserted"]}
            updated = [p for p in puts if (p.prefix, p.key) not in inserted]
            if updated and self.has_vector:
                yield Query(
                    q.DELETE_VECTORS, ([p.prefix for p in updated], [p.key for p in updated])
                )
            many = [
                (
                    plan.puts[n].prefix,
                    plan.puts[n].key,
                    fname,
                    self.cfg.dims,
                    Vec(v),
                    plan.puts[n].owner,
                )
                for _, n in upserts
                for fname, v in vec_of.get(n, [])
            ]
            if many:
                yield Query(q.INSERT_VECTOR, many=many)
            for (k, n), p in zip(upserts, puts, strict=True):
                outcome[n] = PutResult("inserted" if k in inserted else "updated", p.key)
        for m, put in plan.puts.items():
            results[m] = outcome[latest[(put.prefix, put.key)]]

    def _dedup_op(
        self,
        puts: list[PutPlan],
        order: list[int],
        vec_of: dict[int, list[tuple[str, np.ndarray]]],
    ) -> DbOp[dict[int, PutResult]]:
        """Skip or merge the puts of new keys that duplicate a live item."""
        dedup = self.cfg.dedup
        assert dedup is not None
        use_vec = self.vec if self.has_vector else None
        embeddings = [
            vec_text(vec_of[n][0][1]) if use_vec is not None and vec_of.get(n) else None
            for n in order
        ]
        rows = yield Query(
            q.find_duplicates(use_vec),
            {
                "ord": order,
                "prefix": [p.prefix for p in puts],
                "key": [p.key for p in puts],
                "source": [p.source for p in puts],
                "embedding": embeddings,
                "threshold": dedup.threshold,
            },
        )
        by_ord = {n: p for n, p in zip(order, puts, strict=True)}
        out: dict[int, PutResult] = {}
        for r in rows:
            n, dup = r["ord"], r["dup_key"]
            put = by_ord[n]
            if dedup.action == "merge":
                yield Query(q.MERGE_DUPLICATE, (put.encoded, put.importance, put.prefix, dup))
                out[n] = PutResult("merged", put.key, dup)
            else:
                out[n] = PutResult("skipped", put.key, dup)
        return out

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


def _and(*clauses: tuple[sql.Composable, list[Any]] | None) -> tuple[sql.Composable, list[Any]]:
    parts = [c for c in clauses if c is not None]
    return (
        sql.SQL(" AND ").join(p[0] for p in parts),
        [x for p in parts for x in p[1]],
    )
