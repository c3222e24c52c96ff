"""Hybrid search reads only the keyword matches that can make the page (README: memory,
search modes), yet returns what ranking every item would: checked against a brute-force
ranking of the README's relevance over every item, over our sync and async stores."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
import pytest
from langgraph.store.base import PutOp
from memhelp import MakeStore
from psycopg import sql

from langgraph_pgstore.memory import RankingConfig
from langgraph_pgstore.memory.sql import KEYWORD_QUERY

DIMS = 16
N_ITEMS = 200
VOCAB = [f"w{i}" for i in range(16)]


def _corpus(seed: int) -> tuple[dict[str, Any], dict[str, list[float]], list[str]]:
    """Items with 3 words each and random vectors; queries of 3 words whose vectors are
    near one item's, so vector and keyword evidence pull different ways."""
    rng = np.random.default_rng(seed)
    vectors: dict[str, list[float]] = {}
    items: dict[str, Any] = {}
    for i in range(N_ITEMS):
        words = rng.choice(VOCAB, 3, replace=False).tolist()
        text = f"d{i} " + " ".join(words)
        v = rng.normal(size=DIMS)
        vectors[text] = (v / np.linalg.norm(v)).tolist()
        items[str(i)] = {"text": text, "words": words, "importance": float(rng.random())}
    queries = []
    for j in range(12):
        words = rng.choice(VOCAB, 3, replace=False).tolist()
        text = " ".join(words) + f" q{j}"  # q{j} matches nothing: coverage at most 3/4
        near = np.array(vectors[items[str(int(rng.integers(N_ITEMS)))]["text"]])
        v = near + 0.8 * rng.normal(size=DIMS) / np.sqrt(DIMS)
        vectors[text] = (v / np.linalg.norm(v)).tolist()
        queries.append(text)
    return items, vectors, queries


def _exact(
    items: dict[str, Any],
    vectors: dict[str, list[float]],
    query: str,
    ranking: RankingConfig,
    min_score: float | None = None,
) -> list[tuple[str, float]]:
    """Every item's score by the README's formulas, best first (ties by key)."""
    terms = query.split()
    qv = np.array(vectors[query])
    wi, wr = ranking.importance_weight, ranking.recency_weight
    scored = []
    for key, item in items.items():
        sim = min(max(float(np.dot(qv, vectors[item["text"]])), 0.0), 1.0)
        cov = sum(t in item["words"] for t in terms) / len(terms)
        rel = 1 - (1 - sim) * (1 - ranking.keyword_weight * cov)
        if min_score is not None and rel < min_score:
            continue
        score = (1 - wi - wr) * rel + wi * item["importance"] + wr  # put just now: recency 1
        scored.append((key, score))
    return sorted(scored, key=lambda ks: (-ks[1], ks[0]))


@pytest.mark.parametrize(
    ("ranking", "min_score"),
    [(RankingConfig(), None), (RankingConfig(importance_weight=0.4), None), (RankingConfig(), 0.3)],
    ids=["plain", "importance", "min_score"],
)
async def test_hybrid_equals_the_exact_ranking(
    make_ours: MakeStore, ranking: RankingConfig, min_score: float | None
) -> None:
    items, vectors, queries = _corpus(seed=3)
    d = await make_ours(
        index={"dims": DIMS, "embed": lambda ts: [vectors[t] for t in ts], "fields": ["text"]},
        ranking=ranking,
        ef_search=200,  # the HNSW walk sees every item: the test checks the ranking only
    )
    await d.batch(
        [
            PutOp(("h",), k, {"text": v["text"], "importance": v["importance"]})
            for k, v in items.items()
        ]
    )
    outside = exact = 0
    for query in queries:
        want = _exact(items, vectors, query, ranking, min_score)
        page1 = await d.search(("h",), query=query, limit=5, min_score=min_score)
        page2 = await d.search(
            ("h",), query=query, limit=5, min_score=min_score, cursor=page1.next_cursor
        )
        got = [(r.key, r.score) for r in [*page1, *page2]]
        scores = dict(want)
        assert [s for _, s in got] == pytest.approx([scores[k] for k, _ in got], abs=1e-4)
        missed = {k for k, _ in want[:10]} - {k for k, _ in got}
        # the approximations (README): items with a single query term are read up to
        # KEYWORD_READ times the page by ts_rank, not every one; with importance in the
        # order, an item the vector side did not reach may outrank by importance alone
        allowed = {1} if not ranking.active else {0, 1}
        terms = query.split()
        assert all(sum(t in items[k]["words"] for t in terms) in allowed for k in missed), query
        exact += not missed
        by_vector = sorted(
            items, key=lambda k: -float(np.dot(vectors[query], vectors[items[k]["text"]]))
        )
        outside += len({k for k, _ in got[:5]} - set(by_vector[:15]))
    assert outside, "no result came from the keyword side: the test would not see it missing"
    assert exact >= len(queries) * 3 // 4, exact


async def test_an_item_with_one_term_outranks_the_vector_side(make_ours: MakeStore) -> None:
    """The second step: an item beyond every vector candidate, with one query term of two,
    tops the page (0.80 > 0.76), so the first step's bound must let it be read."""

    def unit(sim: float, axis: int) -> list[float]:
        v = [0.0] * DIMS
        v[0], v[axis] = sim, (1 - sim * sim) ** 0.5
        return v

    vectors = {"alpha zulu": unit(1.0, 1), "alpha x": unit(0.733, 1)}
    fillers = {f"f{i} filler": unit(0.76 - 0.0015 * i, 1 + i % (DIMS - 1)) for i in range(14)}
    vectors |= fillers
    d = await make_ours(
        index={"dims": DIMS, "embed": lambda ts: [vectors[t] for t in ts], "fields": ["text"]}
    )
    await d.batch([PutOp(("o",), t.split()[0], {"text": t}) for t in [*fillers, "alpha x"]])
    top = await d.search(("o",), query="alpha zulu", limit=1)
    assert [r.key for r in top] == ["alpha"]
    assert top[0].score == pytest.approx(1 - (1 - 0.733) * (1 - 0.5 * 0.5), abs=1e-4)
    vector_side = await d.search(("o",), query="alpha zulu", limit=12, mode="vector")
    assert "alpha" not in [r.key for r in vector_side]  # it is past every vector candidate


async def test_pairs_match_the_items_with_two_terms_or_more(db_url: str) -> None:
    """The first step's keyword condition matches exactly the items that contain at least
    two of the query's terms, phrases and stems included; past 11 terms, every match."""
    docs = {
        "a": "red green blue",
        "b": "red green",
        "c": "red",
        "d": "green blue sky",
        "e": "running red fox",  # stems: "runs" matches it
        "f": "blue sky and red green",
        "g": "sky",
    }
    stmt = sql.SQL("WITH {} SELECT t.k FROM t, kq WHERE t.v @@ kq.pairs").format(KEYWORD_QUERY)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t (k text, v tsvector)")
        for k, text in docs.items():
            conn.execute("INSERT INTO t VALUES (%s, to_tsvector('english', %s))", (k, text))

        def pairs(terms: list[str]) -> set[str]:
            rows = conn.execute(stmt, ["english", " or ".join(terms), terms, "english"])
            return {r[0] for r in rows}

        def at_least(m: int, terms: list[str]) -> set[str]:
            match = "SELECT to_tsvector('english', %s) @@ websearch_to_tsquery('english', %s)"
            return {
                k
                for k, text in docs.items()
                if sum(bool(conn.execute(match, (text, t)).fetchone()[0]) for t in terms) >= m  # type: ignore[index]
            }

        terms = ["red", "green", '"blue sky"', "runs", "the"]  # "the": a stop word, no term
        assert pairs(terms) == at_least(2, terms) == {"a", "b", "d", "e", "f"}
        assert pairs(["red"]) == set()  # one term: no pair
        many = [f"x{i}" for i in range(11)] + ["sky"]
        assert pairs(many) == at_least(1, many) == {"d", "f", "g"}
