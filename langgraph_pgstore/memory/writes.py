"""Writing: a batch's puts and deletes (last write per item wins, as upstream), their
vectors, and near-duplicate handling (``DedupConfig``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._ops import Op as DbOp
from .._ops import Query
from . import sql as q
from .config import StoreConfig
from .items import PutResult
from .ops import Plan, PutPlan
from .vectors import Vec, vec_text

__all__ = ["Writing"]


class Writing:
    """The write op of :class:`~.core.StoreCore` (which provides these attributes)."""

    cfg: StoreConfig
    vec: q.VectorSQL | None
    has_vector: bool | None

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
