"""Searching: the candidates of a query (vector, keyword or both, in one statement), their
relevance and order (``scoring``), and pages with a keyset cursor; listings without a query."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import numpy as np
from langgraph.store.base import SearchOp
from psycopg import sql
from psycopg.rows import DictRow

from .._ops import Op as DbOp
from .._ops import Query
from . import sql as q
from .config import SearchMode, StoreConfig
from .filters import and_
from .items import MemorySearchItem, Page, to_search_item
from .ops import SearchPlan
from .scoring import (
    Candidate,
    encode_cursor,
    keyword_terms,
    rank,
    relevance,
    similarity,
    terms_needed,
)
from .vectors import Vec

__all__ = ["Reads", "Searching"]

#: A hybrid search ranks its keyword matches by relevance (similarity and coverage), but
#: reads only the best ``KEYWORD_READ`` times the page by coverage and ``ts_rank`` first.
KEYWORD_READ = 4

#: Rows a read returned, and whether they renew their TTL: the access notes of a batch.
Reads = list[tuple[list[DictRow], bool]]


class Searching:
    """The search op of :class:`~.core.StoreCore` (which provides these attributes)."""

    cfg: StoreConfig
    vec: q.VectorSQL | None
    has_bm25: bool

    def _search_op(
        self,
        op: SearchOp,
        plan: SearchPlan,
        qv: np.ndarray | None,
        reads: Reads,
    ) -> DbOp[Page[MemorySearchItem]]:
        if plan.mode is None:
            return (yield from self._listing_op(op, plan, reads))
        cfg = self.cfg
        cur = plan.cursor or {}
        seen = int(cur.get("n", op.offset))
        want = seen + op.limit
        pool = want * (4 if cfg.ranking.active else 1)
        terms: tuple[str, list[str]] | None = None
        if plan.mode in ("keyword", "hybrid"):
            terms = keyword_terms(cast(str, op.query))
        # hybrid over GIN: the vector side and the items with two or more query terms, and
        # only if some item with one term could still make the page, every match
        two_step = plan.mode == "hybrid" and qv is not None and bool(terms and terms[1])
        two_step = two_step and not self.has_bm25
        if plan.mode == "hybrid" and not two_step:
            pool = max(pool, 2 * want)
        now = datetime.fromtimestamp(cur["t"], UTC) if "t" in cur else datetime.now(UTC)
        found: list[Candidate] = []
        if pool and (qv is not None or (terms is not None and terms[1])):
            rows = yield from self._hits(plan, qv, pool, terms, pairs=two_step)
            found = self._candidates(plan, rows)
            if two_step and rows and self._one_term_may_rank(plan, rows, found, want, pool, now):
                assert qv is not None
                have = [(r["prefix"], r["key"]) for r in rows]
                more = yield from self._keyword_hits(plan, qv, pool, terms, have)
                found += self._candidates(plan, more)
        cands = [c for c in found if plan.min_score is None or c.relevance >= plan.min_score]
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

    def _candidates(self, plan: SearchPlan, rows: list[DictRow]) -> list[Candidate]:
        """The rows that can be ranked in ``plan``'s mode, with their relevance."""
        out = []
        for r in rows:
            dist = r["dist"]
            sim = None if dist is None else similarity(float(dist), self.cfg.distance)
            cov = r.get("kw_cov")
            rel = relevance(cast(SearchMode, plan.mode), sim, cov, self.cfg.ranking.keyword_weight)
            if rel is None or (plan.mode == "keyword" and not cov):
                continue  # no vector (index=False), or no query term
            tiebreak = float(r["kw_rank"]) if plan.mode == "keyword" else 0.0
            out.append(Candidate(r, rel, tiebreak))
        return out

    def _listing_op(
        self, op: SearchOp, plan: SearchPlan, reads: list[tuple[list[DictRow], bool]]
    ) -> DbOp[Page[MemorySearchItem]]:
        """No usable query: newest first, like LangGraph's stores; keyset on (updated_at,
        namespace, key) when paging by cursor."""
        where, params = plan.where
        if plan.cursor is not None:
            c = plan.cursor
            where, params = and_(
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
        *,
        pairs: bool = False,
    ) -> DbOp[list[DictRow]]:
        """The candidates of a search with a query, in one statement (see
        :func:`.sql.search_statement`; ``pairs``: a hybrid search's first step). The vector
        side walks the HNSW index with iterative scans (filters can't starve it); if a very
        selective filter still leaves it fewer than ``k`` items, the statement runs again
        ranking every match exactly."""
        where, params = plan.where
        vector = qv is not None and plan.mode in ("vector", "hybrid")
        keyword = terms is not None and bool(terms[1])
        bm25 = self.cfg.bm25_index if keyword and self.has_bm25 else None
        args: list[Any] = []
        if keyword:
            args += self._kq_args(terms)
        if vector:
            assert self.vec is not None and qv is not None
            vt = Vec(qv)
            cand = self._candidates_wanted(k)
            # a hybrid search's first step keeps them all (its bound, see _search_op)
            args += [vt, *params, vt, cand, cand if pairs else k]
            yield Query(q.set_iterative(max(self.cfg.ef_search, cand), knobs=plan.filtered))
        if keyword:
            assert terms is not None
            text = " ".join(terms[1])
            # pairs are ranked by relevance, which needs each one's distance: more of them
            args += (
                [text, *params, text, k] if bm25 else [*params, KEYWORD_READ * k if pairs else k]
            )
        if vector and keyword:
            args.append(vt)
        stmt = partial(
            q.search_statement,
            self.vec,
            where,
            vector=vector,
            keyword=keyword,
            pairs=pairs,
            bm25_index=bm25,
        )
        rows = yield Query(stmt(), args)
        exact = vector and params and sum(r["by_vector"] for r in rows) < k
        if vector and plan.filtered and (exact or not plan.last):
            # else the commit resets them (a hybrid search's second step plans the same
            # with them: GIN bitmap, primary-key probes)
            yield Query(q.RESET_KNOBS)
        if exact:
            rows = yield Query(stmt(exact=True), args)
        return rows

    def _candidates_wanted(self, k: int) -> int:
        """Rows the vector side takes from the index for ``k`` items: any field of an item
        may come up, and a half-precision order is re-ranked."""
        cand = k * max(len(self.cfg.fields), 1)
        if self.cfg.vector_type == "halfvec":
            cand += max(k // 2, 10)
        return cand

    def _one_term_may_rank(
        self,
        plan: SearchPlan,
        rows: list[DictRow],
        found: list[Candidate],
        want: int,
        pool: int,
        now: datetime,
    ) -> bool:
        """Whether an item with a single query term, which a hybrid search's first step
        does not read, could still make its first ``want`` results (see
        :func:`.scoring.terms_needed`)."""
        top, cfg = rows[0], self.cfg
        if not top["n_terms"]:
            return False  # every word of the query is a stop word
        filled = top["c_rows"] >= self._candidates_wanted(pool)
        need = terms_needed(
            [c for c in found if plan.min_score is None or c.relevance >= plan.min_score],
            want=want,
            # an item the vector side did not return is no closer than its last row
            floor=similarity(float(top["c_worst"]), cfg.distance) if filled else None,
            n_terms=int(top["n_terms"]),
            keyword_weight=cfg.ranking.keyword_weight,
            ranking=cfg.ranking,
            min_score=plan.min_score,
            now=now,
        )
        return need == 1

    def _keyword_hits(
        self,
        plan: SearchPlan,
        qv: np.ndarray,
        k: int,
        terms: tuple[str, list[str]] | None,
        have: list[tuple[str, str]],
    ) -> DbOp[list[DictRow]]:
        """A hybrid search's second step: the ``k`` best keyword matches the first step
        did not return (``have``), by coverage, with their distance."""
        where, params = and_(
            plan.where,
            (q.NOT_AMONG, [[prefix for prefix, _ in have], [key for _, key in have]]),
        )
        stmt = q.search_statement(self.vec, where, vector=False, keyword=True, distance=True)
        args = [*self._kq_args(terms), *params, KEYWORD_READ * k, Vec(qv)]
        return (yield Query(stmt, args))

    def _kq_args(self, terms: tuple[str, list[str]] | None) -> list[Any]:
        assert terms is not None
        return [self.cfg.ts_config, terms[0], terms[1], self.cfg.ts_config]
