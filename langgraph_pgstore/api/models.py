"""Bodies of the HTTP API that are not the library's own records.

Runs, steps, LLM calls and stats are telemetry's records (``telemetry.records``), sessions and
messages the conversations models, lists ``paging.Page``: the routes declare those types
directly, so Python, the CLI's ``--json`` and HTTP name every field alike. What is here: health
bodies, and the store routes' requests and items, shaped as LangGraph's own server API
(``langgraph_sdk``'s ``client.store`` talks to them).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any, Literal, TypedDict, cast, get_type_hints

from pydantic import BaseModel, ConfigDict, Field

from ..health import HealthReport

__all__ = [
    "Health",
    "Liveness",
    "NamespacesPage",
    "Problem",
    "Readiness",
    "StoreDelete",
    "StoreItem",
    "StoreListNamespaces",
    "StorePut",
    "StoreSearch",
    "StoreSearchItem",
    "StoreSearchPage",
]


class Problem(BaseModel):
    """An error: 401, 403, 404, 409, 422 (bad input), 503 (database unavailable)."""

    detail: Any


def _health_fields() -> dict[str, Any]:
    """``HealthReport``'s fields (one list of fields), after the verdict and ``migrated``,
    which ``to_dict`` adds."""
    hints = get_type_hints(HealthReport)
    fields: dict[str, Any] = {"status": Literal["healthy", "unhealthy"], "migrated": bool}
    fields.update((f.name, hints[f.name]) for f in dataclasses.fields(HealthReport))
    return fields


#: The full health report (``db.health()``) as ``GET /health`` and ``doctor --json`` give it.
#: A TypedDict built from the dataclass's fields (a model would clash with ``schema``).
Health: Any = cast(Any, TypedDict)("Health", _health_fields())


class Liveness(BaseModel):
    status: Literal["alive"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    error: str | None = None
    """The error class when not ready (never its message: it could hold a DSN)."""
    pool: dict[str, int]


# -- store (LangGraph's server API: PUT/GET/DELETE /store/items, POST /store/items/search,
#    POST /store/namespaces) ---------------------------------------------------------------

Namespace = list[str]


class StorePut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: Namespace
    key: str
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    """Fields to embed: None for the store's default, False for none."""
    ttl: float | None = None
    """Minutes until the item expires (None: never, or the store's default)."""


class StoreDelete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: Namespace
    key: str


class StoreSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace_prefix: Namespace = Field(default_factory=list)
    filter: dict[str, Any] | None = None
    limit: int = Field(10, ge=1, le=1000)
    offset: int = Field(0, ge=0)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreListNamespaces(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prefix: Namespace | None = None
    suffix: Namespace | None = None
    max_depth: int | None = Field(None, ge=1)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0)


class StoreItem(BaseModel):
    """A memory item (``Item.dict()``); the last three are this package's additions."""

    namespace: Namespace
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    access_count: int | None = None
    last_accessed_at: datetime | None = None
    importance: float | None = None


class StoreSearchItem(StoreItem):
    score: float | None = None
    """What results are ordered by (None without a query)."""
    relevance: float | None = None


class StoreSearchPage(BaseModel):
    items: list[StoreSearchItem]
    next_cursor: str | None = None


class NamespacesPage(BaseModel):
    namespaces: list[Namespace]
    next_cursor: str | None = None
