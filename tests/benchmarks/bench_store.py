"""Benchmark: PgMemoryStore vs langgraph's PostgresStore on the same server, in one run.

Precomputed 384-dim vectors (clustered, unit length) so embedding time is excluded; both
stores get the same items in batches of 500 and the same queries. Items and queries carry
words of their topic cluster, so the keyword side of the default (hybrid) mode has real
matches. Measures put throughput, search p50/p95 and recall@10, unfiltered and with a
filter keeping 10%:

- PostgresStore: its only mode (vector); recall against exact cosine;
- ours, ``hybrid`` (the default): recall against the exact hybrid ranking (the relevance of
  README's scores section computed over every item);
- ours, ``vector``: recall against exact cosine.

    .venv/bin/python tests/benchmarks/bench_store.py --quick     # 10k items
    .venv/bin/python tests/benchmarks/bench_store.py             # 100k items
    .venv/bin/python tests/benchmarks/bench_store.py --sizes 10000 100000

DATABASE_URL selects the server; otherwise the embedded one (data in .pgstore-bench/).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from _common import scratch_database, server_url
from langgraph.store.base import BaseStore, PutOp
from langgraph.store.postgres import PostgresStore
from psycopg.rows import dict_row

from langgraph_pgstore import Database

DIMS = 384
BATCH = 500
NS = ("bench", "user")
VOCAB = 5000
KEYWORD_WEIGHT = 0.5  # RankingConfig's default


@dataclass
class Data:
    x: np.ndarray  # item vectors
    q: np.ndarray  # query vectors
    docs: list[str]  # item texts
    queries: list[str]  # query texts
    doc_words: list[set[str]]
    query_words: list[list[str]]


def make_data(n: int, n_queries: int, seed: int = 7) -> Data:
    """Unit vectors with the low intrinsic dimension of real sentence embeddings: topic
    clusters in a 48-dim latent space, projected to 384 dims, plus isotropic noise. Each
    topic has 8 words; an item says 3 of its topic's and 3 random ones, a query 2 + 1."""
    rng = np.random.default_rng(seed)
    latent_dims = 48
    n_topics = max(n // 100, 10)
    proj = rng.normal(size=(latent_dims, DIMS))
    centers = rng.normal(size=(n_topics, latent_dims))
    topic = rng.integers(0, n_topics, n)
    z = centers[topic] + 0.7 * rng.normal(size=(n, latent_dims))
    x = z @ proj + 2.0 * rng.normal(size=(n, DIMS))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pick = rng.integers(0, n, n_queries)
    zq = z[pick] + 0.3 * rng.normal(size=(n_queries, latent_dims))
    q = zq @ proj
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    topic_words = rng.integers(0, VOCAB, size=(n_topics, 8))
    doc_words: list[set[str]] = []
    docs = []
    for i in range(n):
        words = [f"w{w}" for w in rng.choice(topic_words[topic[i]], 3, replace=False)]
        words += [f"w{w}" for w in rng.integers(0, VOCAB, 3)]
        doc_words.append(set(words))
        docs.append(f"d{i} " + " ".join(words))
    query_words = []
    queries = []
    for j in range(n_queries):
        words = [f"w{w}" for w in rng.choice(topic_words[topic[pick[j]]], 2, replace=False)]
        words.append(f"w{rng.integers(0, VOCAB)}")
        query_words.append([f"q{j}", *words])
        queries.append(f"q{j} " + " ".join(words))
    return Data(x.astype(np.float32), q.astype(np.float32), docs, queries, doc_words, query_words)


def lookup_embed(table: dict[str, list[float]]) -> Callable[[list[str]], list[list[float]]]:
    def embed(texts: list[str]) -> list[list[float]]:
        return [table[t] for t in texts]

    return embed


def truth(data: Data, j: int, mask: np.ndarray, sims: np.ndarray, hybrid: bool) -> set[int]:
    """Exact top 10 among ``mask``: cosine, or the hybrid relevance over every item."""
    idx = np.flatnonzero(mask)
    score = sims[idx]
    if hybrid:
        words = data.query_words[j]
        cov = np.array([sum(w in data.doc_words[i] for w in words) / len(words) for i in idx])
        score = 1 - (1 - np.clip(score, 0, 1)) * (1 - KEYWORD_WEIGHT * cov)
    return set(idx[np.argsort(-score, kind="stable")[:10]].tolist())


def put_all(store: BaseStore, data: Data) -> float:
    n = len(data.docs)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        store.batch(
            [
                PutOp(NS, str(i), {"text": data.docs[i], "g": i % 10})
                for i in range(start, min(start + BATCH, n))
            ]
        )
    return n / (time.perf_counter() - t0)


#: Search arms: (result key, store key, hybrid ranking as the truth, extra search arguments).
ARMS = (
    ("anchor", "anchor", False, {}),
    ("hybrid", "ours", True, {}),
    ("vector", "ours", False, {"mode": "vector"}),
)
WARMUP = 10


def searches(stores: dict[str, BaseStore], data: Data) -> dict[str, dict[str, dict[str, float]]]:
    """p50/p95/recall of every arm, unfiltered and filtered. The arms are interleaved query
    by query, in a rotating order, after a few untimed queries each: no arm finds a cache
    the one before it warmed, and a slow moment slows them all."""
    n = len(data.docs)
    sims = data.q @ data.x.T
    out: dict[str, dict[str, dict[str, float]]] = {arm[0]: {} for arm in ARMS}
    for label, flt, mask in (
        ("all", None, np.ones(n, bool)),
        ("10%", {"g": 0}, np.arange(n) % 10 == 0),
    ):
        lat: dict[str, list[float]] = {arm[0]: [] for arm in ARMS}
        rec: dict[str, list[float]] = {arm[0]: [] for arm in ARMS}
        for j in range(-WARMUP, len(data.queries)):
            for k in range(len(ARMS)):
                name, store, hybrid, extra = ARMS[(j + k) % len(ARMS)]
                query = data.queries[j % len(data.queries)]
                t = time.perf_counter()
                res = stores[store].search(NS, query=query, filter=flt, limit=10, **extra)
                elapsed = time.perf_counter() - t
                if j >= 0:
                    want = truth(data, j, mask, sims[j], hybrid)
                    lat[name].append(elapsed)
                    rec[name].append(len(want & {int(r.key) for r in res}) / 10)
        for name in lat:
            ordered = sorted(lat[name])
            out[name][label] = {
                "p50": 1000 * statistics.median(ordered),
                "p95": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
                "recall": float(np.mean(rec[name])),
            }
    return out


def bench(admin: str, n: int, n_queries: int) -> dict[str, Any]:
    data = make_data(n, n_queries)
    table = {t: v.tolist() for t, v in zip(data.docs, data.x, strict=True)}
    table.update({t: v.tolist() for t, v in zip(data.queries, data.q, strict=True)})
    index = {"dims": DIMS, "embed": lookup_embed(table), "fields": ["text"]}
    results: dict[str, Any] = {}
    with (
        scratch_database(admin) as anchor_url,
        scratch_database(admin) as ours_url,
        psycopg.connect(
            anchor_url, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn,
        Database.connect(ours_url, max_size=4) as db,
    ):
        anchor = PostgresStore(conn, index=index)  # type: ignore[arg-type]
        anchor.setup()
        results["put anchor"] = put_all(anchor, data)
        conn.execute("VACUUM ANALYZE store")
        conn.execute("VACUUM ANALYZE store_vectors")
        ours = db.memory(index=index)  # type: ignore[arg-type]
        results["put ours"] = put_all(ours, data)
        with db.pool.connection() as c:
            c.execute("VACUUM ANALYZE memory_items")
            c.execute("VACUUM ANALYZE memory_vectors")
        results.update(searches({"anchor": anchor, "ours": ours}, data))
    return results


def render(n: int, r: dict[str, Any]) -> str:
    a = r["anchor"]
    rows = [
        f"### {n:,} items, 384 dims ({os.cpu_count()} cores)",
        "| metric | PostgresStore (anchor) | ours, hybrid (default) | ours, vector |",
        "|---|---|---|---|",
        f"| put items/s | {r['put anchor']:.0f} | {r['put ours']:.0f} "
        f"(**{r['put ours'] / r['put anchor']:.2f}x**) | same store |",
    ]
    for label in ("all", "10%"):
        for m, unit in (("p50", " ms"), ("p95", " ms"), ("recall", "")):
            av = a[label][m]
            cells = []
            for mode in ("hybrid", "vector"):
                ov = r[mode][label][m]
                if m == "recall":
                    cells.append(f"{ov:.3f}")
                else:
                    cells.append(f"{ov:.2f} ({ov / av:.2f}x)")
            fmt = f"{av:.3f}" if m == "recall" else f"{av:.2f}"
            rows.append(f"| search {label} {m}{unit} | {fmt} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10k items only, 50 queries")
    ap.add_argument("--sizes", type=int, nargs="*", default=None)
    ap.add_argument("--queries", type=int, default=None)
    args = ap.parse_args()
    sizes = args.sizes or ([10_000] if args.quick else [100_000])
    nq = args.queries or (50 if args.quick else 200)
    with server_url() as admin:
        for n in sizes:
            print(render(n, bench(admin, n, nq)), flush=True)
            print()


if __name__ == "__main__":
    main()
