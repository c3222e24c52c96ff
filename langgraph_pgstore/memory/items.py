"""What the store returns: LangGraph's ``Item``/``SearchItem`` plus our bookkeeping, pages
with a cursor, and the outcome of a put.

The extra attributes are a superset: code written for LangGraph's items keeps working, and
``dict()`` (what LangGraph's API server serialises) includes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from langgraph.store.base import Item, SearchItem

__all__ = ["ITEM_COLUMNS", "MemoryItem", "MemorySearchItem", "Page", "PutResult", "to_item"]

#: Columns every read selects (alias ``i``), in the order the row factories expect.
ITEM_COLUMNS = (
    "prefix",
    "key",
    "value",
    "created_at",
    "updated_at",
    "importance",
    "access_count",
    "last_accessed_at",
    "ttl_minutes",
)

T = TypeVar("T")


class MemoryItem(Item):
    """An ``Item`` with ``access_count``, ``last_accessed_at`` (as of before this read; reads
    are counted in the background) and ``importance``."""

    __slots__ = ("access_count", "importance", "last_accessed_at")
    access_count: int
    last_accessed_at: datetime | None
    importance: float | None

    def dict(self) -> dict[str, Any]:
        return {**super().dict(), **_extra_dict(self)}


class MemorySearchItem(SearchItem):
    """A ``SearchItem`` with the same extras, plus ``relevance``: the query relevance in
    [0, 1] before importance/recency blending (``score`` is the blended value the results
    are ordered by; the two are equal without a ``RankingConfig``)."""

    __slots__ = ("access_count", "importance", "last_accessed_at", "relevance")
    access_count: int
    last_accessed_at: datetime | None
    importance: float | None
    relevance: float | None

    def dict(self) -> dict[str, Any]:
        return {**super().dict(), **_extra_dict(self), "relevance": self.relevance}


def _fill(item: MemoryItem | MemorySearchItem, row: Mapping[str, Any]) -> None:
    item.access_count = int(row.get("access_count") or 0)
    item.last_accessed_at = row.get("last_accessed_at")
    imp = row.get("importance")
    item.importance = float(imp) if imp is not None else None


def _extra_dict(item: MemoryItem | MemorySearchItem) -> dict[str, Any]:
    seen = item.last_accessed_at
    return {
        "access_count": item.access_count,
        "last_accessed_at": seen.isoformat() if seen else None,
        "importance": item.importance,
    }


def to_item(row: Mapping[str, Any]) -> MemoryItem:
    item = MemoryItem(
        value=row["value"],
        key=row["key"],
        namespace=tuple(row["prefix"].split(".")),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
    _fill(item, row)
    return item


def to_search_item(
    row: Mapping[str, Any], score: float | None = None, relevance: float | None = None
) -> MemorySearchItem:
    item = MemorySearchItem(
        tuple(row["prefix"].split(".")),
        row["key"],
        row["value"],
        row["created_at"],
        row["updated_at"],
        score,
    )
    _fill(item, row)
    item.relevance = relevance
    return item


class Page(list[T]):
    """A list of results that also carries ``next_cursor``: pass it as ``cursor=`` to get the
    following page (``None`` when there is none). Keyset paging: an item inserted between two
    calls never shifts the next page, unlike ``offset``."""

    next_cursor: str | None

    def __init__(self, items: Iterable[T] = (), next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor


@dataclass(frozen=True, slots=True)
class PutResult:
    """What ``put``/``aput`` did (LangGraph's stores return None; the batch API still does).

    ``action``: ``"inserted"`` or ``"updated"``; with a ``DedupConfig``, ``"skipped"`` (a
    near-duplicate exists: ``duplicate_of`` names its key) or ``"merged"`` (the value was
    merged into ``duplicate_of``); ``"deleted"`` for a put of ``None``.
    """

    action: Literal["inserted", "updated", "skipped", "merged", "deleted"]
    key: str
    duplicate_of: str | None = None
