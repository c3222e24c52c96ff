"""What a search score means, and how results are ordered and paged.

Every mode gives each result a **relevance** in [0, 1]:

- vector: the similarity of the item's best field to the query, ``1 - cosine distance``
  (``inner_product``: the product; ``l2``: ``1 - d**2 / 2``), clipped to [0, 1]. For
  unit-length embeddings (what embedding models return) the three are the same number;
- keyword: the share of the query's terms the item contains (its *coverage*);
- hybrid: the vector similarity raised by keyword evidence,
  ``1 - (1 - similarity) * (1 - keyword_weight * coverage)``: never below the similarity,
  equal to it when no query word matches, 1 only for a perfect semantic match.

``min_score`` thresholds the relevance. With a ``RankingConfig`` the order (and ``score``)
blends relevance with importance and recency; ``item.relevance`` keeps the relevance alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InvalidInput
from .config import DistanceType, RankingConfig, SearchMode

__all__ = [
    "Candidate",
    "decode_cursor",
    "encode_cursor",
    "fingerprint",
    "keyword_terms",
    "rank",
    "relevance",
    "similarity",
    "terms_needed",
]

MAX_TERMS = 64
_PHRASE = re.compile(r'"([^"]*)"')
_WORD = re.compile(r"\w+")


def similarity(dist: float, distance: DistanceType) -> float:
    """pgvector distance -> similarity in [0, 1] (see the module docstring)."""
    if distance == "cosine":
        sim = 1.0 - dist
    elif distance == "inner_product":
        sim = -dist  # pgvector's <#> is the negative inner product
    else:
        sim = 1.0 - dist * dist / 2.0
    return min(max(sim, 0.0), 1.0)


def keyword_terms(query: str) -> tuple[str, list[str]]:
    """An ordinary question -> (an OR query for ``websearch_to_tsquery``, its terms).

    Any word may match (OR), a ``"quoted phrase"`` matches as a phrase; nothing the user
    types is read as an operator: terms are runs of word characters only.
    """
    terms: list[str] = []
    for phrase in _PHRASE.findall(query):
        words = _WORD.findall(phrase)
        if words:
            terms.append('"' + " ".join(words) + '"')
    for word in _WORD.findall(_PHRASE.sub(" ", query)):
        if word.lower() != "or":
            terms.append(word)
    unique = list(dict.fromkeys(terms))[:MAX_TERMS]
    return " or ".join(unique), unique


def relevance(
    mode: SearchMode, sim: float | None, coverage: float | None, keyword_weight: float
) -> float | None:
    """The relevance of one candidate in ``mode`` (None: the item can't be ranked)."""
    if mode == "keyword":
        return coverage
    if sim is None:
        return None
    if mode == "vector":
        return sim
    return 1.0 - (1.0 - sim) * (1.0 - keyword_weight * (coverage or 0.0))


@dataclass(slots=True)
class Candidate:
    """A row that may be returned, with what ordering needs."""

    row: Mapping[str, Any]
    relevance: float
    tiebreak: float = 0.0  # keyword rank inside equal coverage
    score: float = 0.0

    @property
    def sort_key(self) -> tuple[float, float, str, str]:
        return (-self.score, -self.tiebreak, self.row["prefix"], self.row["key"])


def rank(candidates: Iterable[Candidate], ranking: RankingConfig, now: datetime) -> list[Candidate]:
    """Blend (when ``ranking`` is active) and sort, best first; ties by namespace and key."""
    out = list(candidates)
    wi, wr = ranking.importance_weight, ranking.recency_weight
    for c in out:
        if ranking.active:
            imp = c.row.get("importance")
            imp = min(max(float(imp), 0.0), 1.0) if imp is not None else 0.0
            age_days = max((now - c.row["updated_at"]).total_seconds() / 86400.0, 0.0)
            rec = 0.5 ** (age_days / ranking.half_life_days)
            c.score = (1 - wi - wr) * c.relevance + wi * imp + wr * rec
        else:
            c.score = c.relevance
    out.sort(key=lambda c: c.sort_key)
    return out


def terms_needed(
    competitors: Sequence[Candidate],
    *,
    want: int,
    floor: float | None,
    n_terms: int,
    keyword_weight: float,
    ranking: RankingConfig,
    min_score: float | None,
    now: datetime,
) -> int | None:
    """How many of the query's ``n_terms`` terms an item must contain to make the first
    ``want`` results of a hybrid search when the vector side did not return it.

    Such an item is no more similar than ``floor``, the least similarity the vector side
    returned (None: it returned everything, no bound), so its relevance is at most
    ``1 - (1 - floor) * (1 - keyword_weight * coverage)``; it must still reach the
    ``want``-th score among the ``competitors`` (ties included: keys break them) and
    ``min_score``. None: no coverage is enough. Exact up to the vector index's
    approximation, so a hybrid search reads the items with a single query term only when
    this says 1.
    """
    if floor is None or floor >= 1.0 or keyword_weight <= 0.0:
        return 1
    ordered = rank(competitors, ranking, now)
    need = 0.0
    if len(ordered) >= want:
        need = ordered[want - 1].score
        if ranking.active:  # importance and recency may add up to their whole weight
            wi, wr = ranking.importance_weight, ranking.recency_weight
            need = (need - wi - wr) / (1 - wi - wr)
    need = max(need, min_score or 0.0)
    coverage = (1.0 - (1.0 - need) / (1.0 - floor)) / keyword_weight
    terms = max(math.ceil(coverage * n_terms - 1e-9), 1)
    return terms if terms <= n_terms else None


def fingerprint(*parts: Any) -> str:
    """A short hash of what defines a search, so a cursor is refused on another search."""
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=True)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


def encode_cursor(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: Any, fp: str) -> dict[str, Any]:
    """The cursor's fields; InvalidInput when it is malformed or from another search."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 4096:
        raise InvalidInput(f"cursor must be a string from a previous page, got {cursor!r:.40}")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("cursor is malformed (not one this store returned)") from exc
    if not isinstance(data, dict) or data.get("f") != fp:
        raise InvalidInput("cursor belongs to a different search (namespace, query or filter)")
    return data
