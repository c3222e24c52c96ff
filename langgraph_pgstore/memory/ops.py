"""What a batch is made of: LangGraph's ops (with our extras riding on subclasses) and, once
validated, their plans: everything the database step needs, computed before any IO."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast

import numpy as np
from langgraph.store.base import (
    GetOp,
    ListNamespacesOp,
    MatchCondition,
    NotProvided,
    Op,
    PutOp,
    SearchOp,
)
from psycopg import sql

from .config import SearchMode
from .validate import NamespaceError, validate_namespace

__all__ = [
    "NS",
    "IndexArg",
    "ListExtras",
    "PgListOp",
    "PgPutOp",
    "PgSearchOp",
    "Plan",
    "PutPlan",
    "SearchExtras",
    "SearchPlan",
    "TTLArg",
    "Value",
    "delete_op",
    "extras_of",
    "get_op",
    "list_op",
    "put_op",
    "search_op",
]

NS: TypeAlias = tuple[str, ...]  # a namespace
Value: TypeAlias = "Mapping[str, Any]"
IndexArg: TypeAlias = Literal[False] | list[str] | None
TTLArg: TypeAlias = float | NotProvided | None

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


def extras_of(op: SearchOp) -> SearchExtras:
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
    last: bool = False  # the batch's last statement: nothing after it needs the knobs reset


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
