"""What the sync and async stores share besides the core: construction, the attributes
LangGraph's stores expose, the keyword arguments of ``search``/``list_namespaces``, and the
background jobs' status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    ListNamespacesOp,
    NamespacePath,
    Op,
    PutOp,
    SearchOp,
    TTLConfig,
)

from .. import tenancy
from .background import Liveness
from .config import PgIndexConfig, SearchMode, StoreConfig
from .core import StoreCore
from .items import PutResult
from .ops import PgPutOp, Plan, list_op, put_op, search_op

__all__ = ["ListArgs", "MemoryStoreBase", "PutArgs", "SearchArgs"]


class SearchArgs(TypedDict, total=False):
    """Keyword arguments of ``search``/``asearch``: LangGraph's, then ours."""

    query: str | None
    """Natural-language query. Ignored without an index unless ``mode="keyword"``."""
    filter: dict[str, Any] | None
    """Value filters: ``{"a.b": 1}``, ``{"n": {"$gt": 5}}``, ``$eq $ne $gt $gte $lt $lte $in
    $nin $exists``."""
    limit: int
    """Results per page (default 10)."""
    offset: int
    """Results to skip (prefer ``cursor``: stable when items are added between pages)."""
    refresh_ttl: bool | None
    """Renew the TTL of the items returned (default: the TTL config's ``refresh_on_read``)."""
    mode: SearchMode | None
    """``"hybrid"``, ``"vector"`` or ``"keyword"`` for this call (default: the store's)."""
    min_score: float | None
    """Drop results whose relevance (0..1, see README: scores) is below this."""
    cursor: str | None
    """``next_cursor`` of the previous page."""
    vector: Sequence[float] | None
    """A precomputed query embedding (``dims`` floats): no embedder call."""


class PutArgs(TypedDict, total=False):
    """Keyword arguments of ``put``/``aput`` beyond LangGraph's positional ones."""

    ttl: float | None
    """Minutes until the item expires (None: never; default: the TTL config's
    ``default_ttl``)."""


class ListArgs(TypedDict, total=False):
    """Keyword arguments of ``list_namespaces``/``alist_namespaces``."""

    prefix: NamespacePath | None
    suffix: NamespacePath | None
    max_depth: int | None
    limit: int
    offset: int
    cursor: str | None
    """``next_cursor`` of the previous page (namespaces are listed in byte order)."""


class MemoryStoreBase(BaseStore):
    """Configuration and LangGraph's store attributes (``index_config``, ``ttl_config``,
    ``embeddings``, ``supports_ttl``) for both stores."""

    supports_ttl = True

    conn: Any

    def __init__(self, **options: Any) -> None:
        self.cfg = StoreConfig.resolve(**options)
        self.core = StoreCore(self.cfg)
        self.index_config: PgIndexConfig | None = self.cfg.index
        self.ttl_config: TTLConfig | None = self.cfg.ttl
        self.embeddings: Embeddings | None = self.cfg.embeddings
        self._sweeper_liveness = Liveness("ttl sweeper", max_delay=60.0)

    def background_status(self) -> dict[str, Any]:
        """Liveness of the TTL sweeper and the access writer (for health reports): running,
        healthy (no failure since the last success), last error, pending notes."""
        return {
            "ttl_sweeper": self._sweeper_liveness.as_dict(),
            "access_writer": self.core.access.status(),
        }

    def _search(self, namespace_prefix: Any, args: SearchArgs) -> SearchOp:
        return search_op(
            namespace_prefix,
            query=args.get("query"),
            filter=args.get("filter"),
            limit=args.get("limit", 10),
            offset=args.get("offset", 0),
            refresh=self.cfg.refresh_default(args.get("refresh_ttl")),
            mode=args.get("mode"),
            min_score=args.get("min_score"),
            cursor=args.get("cursor"),
            vector=args.get("vector"),
        )

    @staticmethod
    def _put(namespace: Any, key: Any, value: Any, index: Any, args: PutArgs) -> PutOp:
        return put_op(namespace, key, value, index, args.get("ttl", NOT_PROVIDED))

    @staticmethod
    def _list(args: ListArgs) -> ListNamespacesOp:
        return list_op(
            args.get("prefix"),
            args.get("suffix"),
            args.get("max_depth"),
            args.get("limit", 100),
            args.get("offset", 0),
            args.get("cursor"),
        )

    def _plan(self, ops: Iterable[Op]) -> Plan:
        """Validate ``ops`` in the caller's context: its tenant, and the owner of its writes."""
        ops = list(ops)
        return self.core.plan(ops, owner=self._owner(ops), tenant=tenancy.tenant_for(self.conn))

    def _owner(self, ops: Sequence[Op]) -> str | None:
        """Owner of the rows these ops write (``tenancy``): the tenant in effect, else the
        user of the graph run the call is made in, else ``db.on_behalf_of``, else None
        (shared). Namespace labels never decide. Refused when the run's user isn't the
        tenant."""
        if not any(isinstance(op, PutOp) and not isinstance(op, PgPutOp) for op in ops):
            return None
        return tenancy.resolve_owner(self.conn, tenancy.run_user())[1]

    @staticmethod
    def _public(results: list[Any]) -> list[Any]:
        """``batch`` results as LangGraph's contract has them: None for every put."""
        return [None if isinstance(r, PutResult) else r for r in results]
