"""Every statement of the memory store: constants, and builders composed with ``psycopg.sql``.

Builders take only trusted parts (composed SQL, ints from the validated config) and leave
every user value to a ``%s`` parameter; each docstring shows the statement and the order of
its parameters. ``i`` is always ``memory_items``, ``v`` always ``memory_vectors``.
"""

from __future__ import annotations

from psycopg import sql

from .config import DistanceType, StoreConfig
from .items import ITEM_COLUMNS

__all__ = [
    "ACCESS_FLUSH",
    "DELETE_ITEMS",
    "GET_ITEMS",
    "INSERT_VECTOR",
    "ITEMS",
    "KEYWORD_QUERY",
    "LIVE",
    "MERGE_DUPLICATE",
    "NOT_AMONG",
    "UPSERT_ITEMS",
    "VectorSQL",
    "delete_by_source",
    "find_duplicates",
    "list_items",
    "list_namespaces",
    "search_statement",
    "sweep",
]

#: The columns of an item, as selected from ``i``.
ITEMS = sql.SQL(", ").join(sql.SQL("i.{}").format(sql.Identifier(c)) for c in ITEM_COLUMNS)
#: Not expired (applied to reads when ``omit_expired``).
LIVE = sql.SQL("(i.expires_at IS NULL OR i.expires_at > now())")

# --------------------------------------------------------------------------- setup

HAS_EXTENSIONS = """
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')
       AND to_regclass('memory_vectors') IS NOT NULL AS vector,
       (SELECT extversion FROM pg_extension WHERE extname = 'pg_textsearch') AS bm25_version
"""
INDEX_EXISTS = "SELECT to_regclass(%s) IS NOT NULL AS ok"
#: Serialises run-time index creation between processes (key 2: the index name's hash).
LOCK_INDEX = (
    "SELECT pg_advisory_xact_lock(hashtext('langgraph_pgstore.memory_index'), hashtext(%s))"
)


def create_bm25(cfg: StoreConfig) -> sql.Composed:
    """``CREATE INDEX IF NOT EXISTS <bm25_index> ON memory_items USING bm25 (search_text)``."""
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {name} ON memory_items USING bm25 (search_text) "
        "WITH (text_config = {ts})"
    ).format(name=sql.Identifier(cfg.bm25_index), ts=sql.Literal(cfg.ts_config))


def try_ddl(ddl: sql.Composed) -> sql.Composed:
    """Run ``ddl`` in a DO block that turns a failure into a server-log WARNING, so a role
    without DDL rights (or a server that can't build the index) still gets a store."""
    body = sql.SQL(
        "BEGIN EXECUTE {ddl}; EXCEPTION WHEN OTHERS THEN"
        " RAISE WARNING 'langgraph_pgstore memory index not created: %', SQLERRM; END"
    ).format(ddl=sql.Literal(ddl.as_string()))
    return sql.SQL("DO {}").format(sql.Literal(body.as_string()))


# --------------------------------------------------------------------------- items

#: Items by (prefix, key): the lateral join makes each one a primary-key lookup whatever the
#: planner guesses of ``unnest`` (it guesses 100 rows, and would hash the whole table).
_BY_KEYS = "unnest(%s::text[], %s::text[]) AS u(prefix, key) CROSS JOIN LATERAL ("

GET_ITEMS = sql.SQL(
    "SELECT {items} FROM " + _BY_KEYS + "SELECT * FROM memory_items i"
    " WHERE i.prefix = u.prefix AND i.key = u.key) AS i"
).format(items=ITEMS)
"""Params: prefixes, keys (append ``WHERE LIVE`` to hide expired items)."""

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
       u.ttl, u.source, u.importance, u.txt,
       CASE WHEN u.txt IS NULL THEN NULL ELSE to_tsvector(%s::regconfig, u.txt) END, u.owner
FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::float8[], %s::text[],
            %s::text[])
     AS u(prefix, key, value, ttl, source, importance, txt, owner)
ORDER BY u.prefix, u.key
ON CONFLICT (prefix, key) DO UPDATE SET
    value = excluded.value, updated_at = now(), expires_at = excluded.expires_at,
    ttl_minutes = excluded.ttl_minutes, source = excluded.source,
    importance = excluded.importance, search_text = excluded.search_text,
    search_tsv = excluded.search_tsv, owner_id = excluded.owner_id
RETURNING i.prefix, i.key, (xmax = 0) AS inserted
"""
"""Params: text search config, then one array per column (the last: each row's owner, see
``tenancy``). Rows are inserted in key order, so concurrent writers lock them in one order
(no deadlock between two batches)."""

DELETE_VECTORS = """
DELETE FROM memory_vectors v USING unnest(%s::text[], %s::text[]) AS u(prefix, key)
WHERE v.prefix = u.prefix AND v.key = u.key
"""
INSERT_VECTOR = """
INSERT INTO memory_vectors (prefix, key, field_name, dims, embedding, owner_id)
VALUES (%s, %s, %s, %s, %b::vector, %s)
"""

MERGE_DUPLICATE = """
UPDATE memory_items SET value = value || %s::jsonb, updated_at = now(),
       importance = GREATEST(importance, %s)
WHERE prefix = %s AND key = %s
"""

ACCESS_FLUSH = """
WITH locked AS MATERIALIZED (
    SELECT u.*, l.row_id
    FROM unnest(%s::text[], %s::text[], %s::int[], %s::timestamptz[], %s::bool[])
        AS u(prefix, key, n, seen_at, refresh)
    CROSS JOIN LATERAL (
        SELECT i.ctid AS row_id FROM memory_items i WHERE i.prefix = u.prefix AND i.key = u.key
        FOR UPDATE SKIP LOCKED
    ) AS l
)
UPDATE memory_items i SET
    access_count = i.access_count + u.n,
    last_accessed_at = CASE WHEN u.n > 0 THEN greatest(i.last_accessed_at, u.seen_at)
                            ELSE i.last_accessed_at END,
    expires_at = CASE WHEN u.refresh AND i.ttl_minutes IS NOT NULL AND i.expires_at > now()
                      THEN now() + make_interval(secs => i.ttl_minutes * 60)
                      ELSE i.expires_at END
FROM locked u
WHERE i.ctid = ANY(ARRAY(SELECT row_id FROM locked)) AND i.ctid = u.row_id
RETURNING i.prefix, i.key
"""
"""Params: prefixes, keys (sorted), read counts, last read times, refresh flags. Rows are
locked one by one in key order, by primary key, and locked rows skipped (the caller retries
them), so flushes never wait on or deadlock with each other or with writers; the update then
finds each locked row by its ``ctid`` (stable while locked). An expired row is never
revived."""
EXISTING = (
    "SELECT i.prefix, i.key FROM " + _BY_KEYS + "SELECT i.prefix, i.key FROM memory_items i"
    " WHERE i.prefix = u.prefix AND i.key = u.key) AS i"
)
#: Bookkeeping writes don't wait for the WAL flush.
ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"


def sweep(chunk: int) -> sql.Composed:
    """Delete up to ``chunk`` expired items of every owner, skipping rows another
    transaction holds: through migration 0008's definer function, since the sweeper acts
    for no tenant and row-level security would show it only shared rows."""
    return sql.SQL("SELECT pgstore_sweep_expired_memories({n}) AS n").format(
        n=sql.Literal(int(chunk))
    )


def delete_by_source(namespace: sql.Composable) -> sql.Composed:
    """Params: the namespace condition's, then the source."""
    return sql.SQL(
        "WITH d AS (DELETE FROM memory_items i WHERE {ns} AND i.source = %s RETURNING 1)"
        " SELECT count(*) AS n FROM d"
    ).format(ns=namespace)


# --------------------------------------------------------------------------- reads


def list_items(where: sql.Composable) -> sql.Composed:
    """Search without a query, newest first: ``SELECT .. WHERE {where} ORDER BY updated_at
    DESC, prefix, key LIMIT %s OFFSET %s`` (params: where's, limit, offset)."""
    return sql.SQL(
        "SELECT {items} FROM memory_items i WHERE {w}"
        " ORDER BY i.updated_at DESC, i.prefix, i.key LIMIT %s OFFSET %s"
    ).format(items=ITEMS, w=where)


def list_namespaces(depth: bool, where: sql.Composable) -> sql.Composed:
    """Distinct namespaces (cut at ``max_depth`` when ``depth``), in byte order.

    Params: [max_depth], where's, the cursor (NULL for none), limit, offset.
    """
    col = (
        sql.SQL("array_to_string((string_to_array(i.prefix, '.'))[1:%s], '.')")
        if depth
        else sql.SQL("i.prefix")
    )
    return sql.SQL(
        'SELECT ns FROM (SELECT DISTINCT {col} COLLATE "C" AS ns FROM memory_items i'
        " WHERE {w}) AS n WHERE %s::text IS NULL OR ns > %s::text"
        " ORDER BY ns LIMIT %s OFFSET %s"
    ).format(col=col, w=where)


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


def set_iterative(ef_search: int, *, knobs: bool) -> sql.SQL:
    """HNSW settings: iterative scans (filters can't starve a page) and the search breadth,
    for the session (they only steer HNSW scans, so a search needs no transaction); with
    ``knobs`` (value filters, in a transaction) also the planner knobs above, locally."""
    parts = [
        "set_config('hnsw.iterative_scan', 'relaxed_order', false)",
        f"set_config('hnsw.ef_search', '{int(ef_search)}', false)",
    ]
    if knobs:
        parts += [f"set_config('{k}', 'off', true)" for k in _VECTOR_KNOBS]
    return sql.SQL("SELECT " + ", ".join(parts))


RESET_KNOBS = "SELECT " + ", ".join(f"set_config('{k}', 'on', true)" for k in _VECTOR_KNOBS)

#: Not among the given items (params: prefixes, keys): what a hybrid search's second step
#: skips, since its first step returned them.
NOT_AMONG = sql.SQL("(i.prefix, i.key) NOT IN (SELECT * FROM unnest(%s::text[], %s::text[]))")

#: Per-row keyword coverage: the share of the query's terms the item contains.
_COVERAGE = sql.SQL(
    "((SELECT count(*) FROM unnest(kq.terms) AS t(q) WHERE i.search_tsv @@ t.q)::float8"
    " / greatest(cardinality(kq.terms), 1))"
)
#: The keyword query, once per statement: the OR of all terms, each term alone, and
#: ``pairs``: the items with at least two of the terms (the OR of every two terms' AND,
#: which GIN answers from its posting lists; past 11 terms, 55 pairs, every match).
#: ``OFFSET 0`` keeps the planner from copying the terms' subquery into each use.
KEYWORD_QUERY = sql.SQL(
    "kq AS MATERIALIZED (SELECT k.*, CASE WHEN cardinality(k.terms) <= 11 THEN"
    " (SELECT string_agg('(' || a.t::text || ') & (' || b.t::text || ')', ' | ')::tsquery"
    " FROM unnest(k.terms) WITH ORDINALITY AS a(t, n)"
    " JOIN unnest(k.terms) WITH ORDINALITY AS b(t, n) ON a.n < b.n) ELSE k.q END AS pairs"
    " FROM (SELECT websearch_to_tsquery(%s::regconfig, %s) AS q,"
    " ARRAY(SELECT t FROM unnest(%s::text[]) AS w(x),"
    " websearch_to_tsquery(%s::regconfig, w.x) AS t WHERE numnode(t) > 0) AS terms"
    " OFFSET 0) AS k)"
)


#: pgvector's operator, exact function and operator class per distance type.
_OPS = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
_FUNCS = {
    "cosine": "cosine_distance({a}, {b})",
    "l2": "l2_distance({a}, {b})",
    "inner_product": "(-inner_product({a}, {b}))",
}
_OPCLASS = {"cosine": "cosine_ops", "l2": "l2_ops", "inner_product": "ip_ops"}


class VectorSQL:
    """Distance expressions of one store (vector type, distance, dims), matching the index.

    ``indexed`` is the expression the HNSW index was built on (so the planner can walk it,
    at half precision with ``halfvec``); ``exact`` is the distance at full precision, written
    so no index matches: candidates come from the index, their order and score from
    ``exact`` (pgvector's "index at half precision, then re-rank"), and it is the fallback
    ordering for very selective filters. Both take one parameter: the query vector.
    """

    def __init__(self, cfg: StoreConfig) -> None:
        self.cfg = cfg
        d = sql.Literal(cfg.dims)
        vt = sql.SQL(cfg.vector_type)
        self.column = sql.SQL("(v.embedding::{vt}({d}))").format(vt=vt, d=d)
        self._indexed_column = sql.SQL("(embedding::{vt}({d}))").format(vt=vt, d=d)
        self.param = (
            sql.SQL("(%b::vector({d}))").format(d=d)
            if cfg.vector_type == "vector"
            else sql.SQL("(%b::vector({d})::halfvec({d}))").format(d=d)
        )
        self.indexed = sql.SQL("({a} {op} {b})").format(
            a=self.column, op=sql.SQL(_OPS[cfg.distance]), b=self.param
        )
        # full precision, and written so that no index matches it
        self.exact = sql.SQL(_FUNCS[cfg.distance]).format(
            a=sql.SQL("v.embedding"), b=sql.SQL("(%b::vector({d}))").format(d=d)
        )

    def create_index(self) -> sql.Composed:
        """The per-(dims, type, distance) HNSW index, partial on ``dims``."""
        cfg = self.cfg
        return sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON memory_vectors USING hnsw ({col} {opclass})"
            " WITH (m = {m}, ef_construction = {efc}) WHERE dims = {d}"
        ).format(
            name=sql.Identifier(cfg.hnsw_index),
            col=self._indexed_column,
            opclass=sql.SQL(cfg.vector_type + "_" + _OPCLASS[cfg.distance]),
            m=sql.Literal(cfg.hnsw_m),
            efc=sql.Literal(cfg.hnsw_ef_construction),
            d=sql.Literal(cfg.dims),
        )

    def distance_of_item(self) -> sql.Composed:
        """Exact distance of item ``i`` (its best field) to the query vector; NULL when the
        item has no vector (``index=False``)."""
        return sql.SQL(
            "(SELECT min({dist}) FROM memory_vectors v"
            " WHERE v.prefix = i.prefix AND v.key = i.key AND v.dims = {d})"
        ).format(dist=self.exact, d=sql.Literal(self.cfg.dims))


def search_statement(
    vec: VectorSQL | None,
    where: sql.Composable,
    *,
    vector: bool,
    keyword: bool,
    pairs: bool = False,
    distance: bool = False,
    exact: bool = False,
    bm25_index: str | None = None,
) -> sql.Composed:
    """One statement for a search with a query: its candidates and what ranking needs.

    Vector side (``vector``): ``c`` walks the HNSW index (``exact``: ranks every match
    instead), ``b`` keeps each item's best field, the k best. Keyword side (``keyword``):
    ``kw`` takes the k best matches, from pg_textsearch's BM25 index (``bm25_index``: fast
    top-k) or the GIN index on ``search_tsv``, by coverage then ``ts_rank``: of every match,
    or (``pairs``) only of the items with at least two query terms, which GIN finds
    without reading the others (the first step of a hybrid search, see ``search.py``).
    The final select joins the candidates to the items by primary key::

        WITH [kq AS (..),] [c AS (..), b AS (..),] [kw AS (..)]
        SELECT items, dist, [kw_cov, kw_rank,] by_vector[, n_terms, c_rows, c_worst]
        FROM (b UNION kw) u JOIN memory_items i

    ``dist`` is b's (a keyword candidate of a hybrid search, or with ``distance``:
    computed, NULL without a vector), ``kw_cov`` the share of query terms the item has,
    ``kw_rank`` its ``ts_rank`` (per item, so the order stays stable under inserts, unlike
    BM25's corpus statistics); with ``pairs``, the number of query terms, and the number
    of rows ``c`` found and their greatest distance.

    Params, in order: [cfg, or-query, terms, cfg] (keyword side); [vector, where's, vector,
    candidates, k] (vector side); [where's, k] or, with BM25, [text, where's, text, k]
    (keyword side); [vector] (both sides, or ``distance``).
    """
    ctes: list[sql.Composable] = []
    cols: list[sql.Composable] = [ITEMS]
    if keyword:
        ctes.append(KEYWORD_QUERY)
    if vector:
        assert vec is not None
        ctes.append(
            sql.SQL(
                "c AS MATERIALIZED (SELECT v.prefix, v.key, {dist} AS dist FROM memory_vectors v"
                " JOIN memory_items i ON i.prefix = v.prefix AND i.key = v.key"
                " WHERE v.dims = {d} AND {w} ORDER BY {order} LIMIT %s),"
                " b AS MATERIALIZED (SELECT prefix, key, min(dist) AS dist FROM c"
                " GROUP BY prefix, key ORDER BY 3 LIMIT %s)"
            ).format(
                dist=vec.exact,
                order=vec.exact if exact else vec.indexed,
                d=sql.Literal(vec.cfg.dims),
                w=where,
            )
        )
    if keyword:
        if bm25_index is not None:
            score = sql.SQL("(i.search_text <@> to_bm25query(%s, {idx}))").format(
                idx=sql.Literal(bm25_index)
            )
            kw = sql.SQL(
                "kw AS MATERIALIZED (SELECT i.prefix, i.key FROM memory_items i"
                " WHERE {s} < 0 AND {w} ORDER BY {s} LIMIT %s)"
            ).format(s=score, w=where)
        else:
            kw = sql.SQL(
                "kw AS MATERIALIZED (SELECT i.prefix, i.key FROM memory_items i, kq"
                " WHERE numnode(kq.q) > 0 AND i.search_tsv @@ kq.{m} AND {w}"
                " ORDER BY {cov} DESC, ts_rank(i.search_tsv, kq.q) DESC LIMIT %s)"
            ).format(m=sql.SQL("pairs" if pairs else "q"), w=where, cov=_COVERAGE)
        ctes.append(kw)
    if vector and keyword:
        assert vec is not None
        cols.append(sql.SQL("coalesce(b.dist, {}) AS dist").format(vec.distance_of_item()))
        source = sql.SQL(
            "(SELECT prefix, key FROM b UNION SELECT prefix, key FROM kw) AS u"
            " LEFT JOIN b ON b.prefix = u.prefix AND b.key = u.key"
        )
    elif vector:
        cols.append(sql.SQL("u.dist"))
        source = sql.SQL("b AS u")
    else:
        dist = vec.distance_of_item() if distance and vec else sql.SQL("NULL::float8")
        cols.append(sql.SQL("{} AS dist").format(dist))
        source = sql.SQL("kw AS u")
    if keyword:
        cols += [
            sql.SQL("{} AS kw_cov").format(_COVERAGE),
            sql.SQL("ts_rank(i.search_tsv, kq.q) AS kw_rank"),
        ]
    by_vector = "b.key IS NOT NULL" if vector and keyword else "true" if vector else "false"
    cols.append(sql.SQL(by_vector + " AS by_vector"))
    if vector and pairs:  # what the second step of a hybrid search needs
        cols.append(
            sql.SQL(
                "cardinality(kq.terms) AS n_terms, (SELECT count(*) FROM c) AS c_rows,"
                " (SELECT max(dist) FROM c) AS c_worst"
            )
        )
    return sql.SQL(
        "WITH {ctes} SELECT {cols} FROM {source}"
        " JOIN memory_items i ON i.prefix = u.prefix AND i.key = u.key{kq}"
    ).format(
        ctes=sql.SQL(", ").join(ctes),
        cols=sql.SQL(", ").join(cols),
        source=source,
        kq=sql.SQL(" CROSS JOIN kq") if keyword else sql.SQL(""),
    )


def _similarity(dist: sql.Composable, distance: DistanceType) -> sql.Composed:
    """SQL twin of :func:`.scoring.similarity` (distance -> similarity)."""
    if distance == "cosine":
        return sql.SQL("(1 - {})").format(dist)
    if distance == "inner_product":
        return sql.SQL("(-{})").format(dist)
    return sql.SQL("(1 - ({d}) * ({d}) / 2)").format(d=dist)


def find_duplicates(vec: VectorSQL | None) -> sql.Composed:
    """For each new key of a put batch, one live item of the same namespace that has the
    same source or (with ``vec``) a similarity >= threshold.

    Named params: ord, prefix, key, source, embedding (text vectors), threshold.
    """
    by_source = sql.SQL(
        "SELECT i.key FROM memory_items i WHERE i.prefix = u.prefix AND i.key <> u.key"
        " AND i.source = u.source AND {live}"
    ).format(live=LIVE)
    parts: list[sql.Composable] = [by_source]
    if vec is not None:
        d = sql.Literal(vec.cfg.dims)
        col = vec.column
        qv = sql.SQL("(u.embedding::vector({d})::{vt}({d}))").format(
            d=d, vt=sql.SQL(vec.cfg.vector_type)
        )
        dist = sql.SQL("({a} {op} {b})").format(a=col, op=sql.SQL(_OPS[vec.cfg.distance]), b=qv)
        parts.append(
            sql.SQL(
                "SELECT * FROM (SELECT i.key FROM memory_vectors v"
                " JOIN memory_items i ON i.prefix = v.prefix AND i.key = v.key"
                " WHERE u.embedding IS NOT NULL AND v.prefix = u.prefix AND v.dims = {d}"
                " AND v.key <> u.key AND {live} AND {sim} >= %(threshold)s"
                " ORDER BY {dist} LIMIT 1) AS sem"
            ).format(d=d, live=LIVE, sim=_similarity(dist, vec.cfg.distance), dist=dist)
        )
    return sql.SQL(
        "SELECT u.ord, d.key AS dup_key FROM unnest(%(ord)s::int[], %(prefix)s::text[],"
        " %(key)s::text[], %(source)s::text[], %(embedding)s::text[])"
        " AS u(ord, prefix, key, source, embedding)"
        " CROSS JOIN LATERAL ({union} LIMIT 1) AS d"
        " WHERE NOT EXISTS (SELECT 1 FROM memory_items e WHERE e.prefix = u.prefix"
        " AND e.key = u.key)"
    ).format(union=sql.SQL(" UNION ALL ").join(parts))
