"""Benchmark: PgMemoryStore vs langgraph's PostgresStore on the same server.

Precomputed 384-dim vectors (clustered, unit length) so embedding time is excluded; both
stores get the same items in batches of 500 and the same queries. Measures put throughput,
search p50/p95 and recall@10 against exact cosine, unfiltered and with a filter keeping 10%.

    .venv/bin/python tests/benchmarks/bench_store.py --quick     # 10k items
    .venv/bin/python tests/benchmarks/bench_store.py             # 10k and 100k

DATABASE_URL selects the server; otherwise the embedded one (data in .pgstore-bench/).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
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


def make_data(n: int, n_queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors with the low intrinsic dimension of real sentence embeddings: topic
    clusters in a 48-dim latent space, projected to 384 dims, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    latent_dims = 48
    proj = rng.normal(size=(latent_dims, DIMS))
    centers = rng.normal(size=(max(n // 100, 10), latent_dims))
    z = centers[rng.integers(0, len(centers), n)] + 0.7 * rng.normal(size=(n, latent_dims))
    x = z @ proj + 2.0 * rng.normal(size=(n, DIMS))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    zq = z[rng.integers(0, n, n_queries)] + 0.3 * rng.normal(size=(n_queries, latent_dims))
    q = zq @ proj
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x.astype(np.float32), q.astype(np.float32)


def lookup_embed(table: dict[str, list[float]]) -> Callable[[list[str]], list[list[float]]]:
    def embed(texts: list[str]) -> list[list[float]]:
        return [table[t] for t in texts]

    return embed


def run_store(store: BaseStore, x: np.ndarray, q: np.ndarray) -> dict[str, Any]:
    n = len(x)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        store.batch(
            [
                PutOp(NS, str(i), {"text": f"doc{i}", "g": i % 10})
                for i in range(start, min(start + BATCH, n))
            ]
        )
    put_s = time.perf_counter() - t0
    out: dict[str, Any] = {"put_per_s": n / put_s}
    sims = q @ x.T
    for label, flt, mask in (
        ("all", None, np.ones(n, bool)),
        ("10%", {"g": 0}, np.arange(n) % 10 == 0),
    ):
        lat, rec = [], []
        for j in range(len(q)):
            truth = set(np.flatnonzero(mask)[np.argsort(-sims[j][mask])[:10]].tolist())
            t = time.perf_counter()
            res = store.search(NS, query=f"q{j}", filter=flt, limit=10)
            lat.append(time.perf_counter() - t)
            rec.append(len(truth & {int(r.key) for r in res}) / 10)
        lat.sort()
        out[label] = {
            "p50": 1000 * statistics.median(lat),
            "p95": 1000 * lat[int(0.95 * (len(lat) - 1))],
            "recall": float(np.mean(rec)),
        }
    return out


def bench(admin: str, n: int, n_queries: int) -> dict[str, dict[str, Any]]:
    x, q = make_data(n, n_queries)
    table = {f"doc{i}": v.tolist() for i, v in enumerate(x)}
    table.update({f"q{j}": v.tolist() for j, v in enumerate(q)})
    index = {"dims": DIMS, "embed": lookup_embed(table), "fields": ["text"]}
    results: dict[str, dict[str, Any]] = {}
    with scratch_database(admin) as url:
        conn = psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        with conn:
            anchor = PostgresStore(conn, index=index)  # type: ignore[arg-type]
            anchor.setup()
            results["PostgresStore"] = run_store(anchor, x, q)
    with scratch_database(admin) as url, Database.connect(url, max_size=4) as db:
        ours = db.memory(index=index, search_mode="vector")  # type: ignore[arg-type]
        results["PgMemoryStore"] = run_store(ours, x, q)
    return results


def table(n: int, r: dict[str, dict[str, Any]]) -> str:
    a, o = r["PostgresStore"], r["PgMemoryStore"]
    rows = [
        f"### {n:,} items, 384 dims",
        "| metric | PostgresStore (anchor) | PgMemoryStore | ratio (ours/anchor) |",
        "|---|---|---|---|",
        f"| put items/s | {a['put_per_s']:.0f} | {o['put_per_s']:.0f} | "
        f"{o['put_per_s'] / a['put_per_s']:.2f}x |",
    ]
    for label in ("all", "10%"):
        for m, unit in (("p50", " ms"), ("p95", " ms"), ("recall", "")):
            av, ov = a[label][m], o[label][m]
            fmt = "{:.3f}" if m == "recall" else "{:.2f}"
            rows.append(
                f"| search {label} {m}{unit} | {fmt.format(av)} | {fmt.format(ov)} | "
                f"{(ov / av if av else float('inf')):.2f}x |"
            )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="10k items only, 50 queries")
    ap.add_argument("--queries", type=int, default=None)
    args = ap.parse_args()
    sizes = [10_000] if args.quick else [10_000, 100_000]
    nq = args.queries or (50 if args.quick else 200)
    with server_url() as admin:
        for n in sizes:
            print(table(n, bench(admin, n, nq)), flush=True)
            print()


if __name__ == "__main__":
    main()
