"""``db.telemetry``: attach recording to graphs, flush, and read runs back (sync and async).

    graph = db.telemetry.instrument(builder.compile(checkpointer=db.checkpointer))
    graph.invoke(inputs, {"configurable": {"thread_id": "t1"}, "metadata": {"user_id": "u1"}})
    db.telemetry.flush()
    db.telemetry.list_runs(user_id="u1")

Recording is the same for ``Database`` and ``AsyncDatabase``: a sync callback handler that only
enqueues and one writer thread with its own connection (never the async pool: callbacks of sync
nodes run on other threads and event loops).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, Unpack
from uuid import UUID

from langchain_core.tracers.context import register_configure_hook
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .. import tenancy
from .._ops import arun, run
from ..config import Settings
from ..connection import Endpoint
from ..errors import InvalidInput
from . import queries
from .events import Capture
from .handler import TelemetryHandler
from .queries import GroupBy, RunFilters, RunKey, RunPage
from .records import GroupStats, Run, RunDetail, RunStats
from .writer import TelemetryWriter, WriterStatus

__all__ = ["AsyncTelemetry", "Telemetry", "disable", "enable"]

G = TypeVar("G")
#: The hub's pool: the query methods of each twin run on it.
P = TypeVar("P")


class _GlobalSlot:
    """Process-wide holder read by LangChain's configure hook.

    LangChain only calls ``.get()`` on a registered hook variable. A real ContextVar would not
    reach threads started without a copied context (sync nodes, server worker threads), so the
    switch is a plain global behind the same interface.
    """

    handler: TelemetryHandler | None = None

    def get(self) -> TelemetryHandler | None:
        return self.handler


_SLOT = _GlobalSlot()
register_configure_hook(_SLOT, inheritable=True)  # type: ignore[arg-type]


class _TelemetryBase(Generic[P]):
    """Recording half, shared by the sync and async hubs."""

    def __init__(
        self,
        pool: P,
        url: str,
        settings: Settings,
        *,
        capture: Capture = "metadata",
        max_buffer: int = 100_000,
        batch_size: int = 2_000,
        max_json_chars: int = 4_000,
        spill_dir: Path | Literal["default"] | None = "default",
    ) -> None:
        if spill_dir == "default":
            spill_dir = default_spill_dir(settings)
        self.writer = TelemetryWriter(
            url,
            settings.connect_kwargs(),  # names the spill files: same server, database, schema
            connect=Endpoint(settings, url).connect,
            max_buffer=max_buffer,
            batch_size=batch_size,
            max_json_chars=max_json_chars,
            spill_dir=spill_dir,
        )
        self.pool = pool
        self._handlers: dict[tuple[Capture, Any], TelemetryHandler] = {}
        self.capture = capture
        self._exporter: Any = None
        self._owner_of = lambda metadata: tenancy.recorded_owner(pool, metadata)
        if spill_dir is not None and any(spill_dir.glob("*.jsonl*")):
            self.writer.start()  # replay what an earlier process spilled

    @property
    def handler(self) -> TelemetryHandler:
        """The handler at the default capture level (what ``enable`` attaches)."""
        return self.handler_for(self.capture)

    def handler_for(self, capture: Capture, tracer: Any = None) -> TelemetryHandler:
        """One handler per (capture level, tracer): they share the writer."""
        key = (capture, tracer)
        handler = self._handlers.get(key)
        if handler is None:
            handler = TelemetryHandler(
                self.writer.enqueue, capture=capture, export=tracer, owner_of=self._owner_of
            )
            self._handlers[key] = handler
        return handler

    def instrument(
        self,
        graph: G,
        *,
        capture: Capture | None = None,
        otel: bool = False,
        tracer_provider: Any = None,
    ) -> G:
        """The same compiled graph with recording attached to every later run.

        ``capture``: how much content is stored (``"none"``, ``"metadata"``, ``"full"``; see
        ``events.Capture``), default the hub's ``capture``. ``otel=True`` (or a
        ``tracer_provider``) also exports each run as OpenTelemetry spans (the ``otel`` extra).
        """
        tracer = None
        if otel or tracer_provider is not None:
            tracer = self._tracer(tracer_provider)
        handler = self.handler_for(capture or self.capture, tracer)
        return graph.with_config(callbacks=[handler])  # type: ignore[attr-defined,no-any-return]

    def _tracer(self, tracer_provider: Any) -> Any:
        from .otel import SpanExporter

        if self._exporter is None:
            self._exporter = SpanExporter()
            self.writer.on_item = self._exporter.on_event
        return self._exporter.tracer(tracer_provider)

    def enable(self, *, capture: Capture | None = None) -> None:
        """Record every LangGraph run in this process (replaces a previous ``enable``)."""
        enable(self, capture=capture)

    @property
    def lost_events(self) -> int:
        """Events dropped: the buffer was full (the database was down or too slow), or they
        could be neither written nor spilled at exit."""
        return self.writer.lost_events

    @property
    def rejected_events(self) -> int:
        """Events the database refused for their content (each logged with its key and reason)."""
        return self.writer.rejected_events

    @property
    def pending(self) -> int:
        """Events recorded and not yet written."""
        return self.writer.pending

    def status(self) -> WriterStatus:
        """Liveness and counters of the writer thread (for ``health()``)."""
        return self.writer.status()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until everything recorded so far is written; False on timeout."""
        return self.writer.flush(timeout)

    async def aflush(self, timeout: float | None = 10.0) -> bool:
        """``flush`` without blocking the event loop (waits in a worker thread)."""
        return await asyncio.to_thread(self.writer.flush, timeout)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush and stop the writer (``Database.close`` calls this); what can't be written
        because the server is down is spilled to a file and replayed by the next start."""
        if _SLOT.handler is not None and _SLOT.handler in self._handlers.values():
            disable()
        return self.writer.close(timeout)

    async def aclose(self, timeout: float | None = 10.0) -> bool:
        """``close`` without blocking the event loop."""
        return await asyncio.to_thread(self.close, timeout)


def default_spill_dir(settings: Settings) -> Path:
    """``PGSTORE_TELEMETRY_SPILL_DIR``, else ``telemetry-spill`` beside the data directory."""
    env = os.environ.get("PGSTORE_TELEMETRY_SPILL_DIR")
    if env:
        return Path(env).expanduser()
    return settings.data_dir.parent / "telemetry-spill"


class Telemetry(_TelemetryBase[ConnectionPool[Any]]):
    """Sync hub part: recording plus the query API on the ``ConnectionPool``."""

    def get_run(self, run_id: UUID | str, *, owner_id: str | None = None) -> RunDetail:
        """The run with its steps and LLM calls; ``NotFound`` when absent (or, with
        ``owner_id``, another user's)."""
        return run(self.pool, queries.get_run(run_id, owner_id=owner_id))

    def find_run(self, **key: Unpack[RunKey]) -> Run:
        """The newest run with this idempotency key or trace id; ``NotFound`` when none."""
        return run(self.pool, queries.find_run(**key))

    def run_stats(self, run_id: UUID | str, *, owner_id: str | None = None) -> RunStats:
        """Steps, tool calls, LLM calls, tokens, cost and duration of one run."""
        return run(self.pool, queries.run_stats(run_id, owner_id=owner_id))

    def stats(self, by: GroupBy = "session", **filters: Unpack[RunFilters]) -> list[GroupStats]:
        """Aggregates per session, user, graph, model or UTC day (filters as ``list_runs``)."""
        return run(self.pool, queries.stats(by, **filters))

    def list_runs(
        self, *, limit: int = 50, cursor: str | None = None, **filters: Unpack[RunFilters]
    ) -> RunPage:
        """Runs newest first, ``{"items", "next_cursor"}``; filters: see ``RunFilters``."""
        return run(self.pool, queries.list_runs(limit=limit, cursor=cursor, **filters))


class AsyncTelemetry(_TelemetryBase[AsyncConnectionPool[Any]]):
    """Async hub part: the same recording, ``a*`` query methods on the async pool."""

    async def aget_run(self, run_id: UUID | str, *, owner_id: str | None = None) -> RunDetail:
        """The run with its steps and LLM calls; ``NotFound`` when absent (or, with
        ``owner_id``, another user's)."""
        return await arun(self.pool, queries.get_run(run_id, owner_id=owner_id))

    async def afind_run(self, **key: Unpack[RunKey]) -> Run:
        """The newest run with this idempotency key or trace id; ``NotFound`` when none."""
        return await arun(self.pool, queries.find_run(**key))

    async def arun_stats(self, run_id: UUID | str, *, owner_id: str | None = None) -> RunStats:
        """Steps, tool calls, LLM calls, tokens, cost and duration of one run."""
        return await arun(self.pool, queries.run_stats(run_id, owner_id=owner_id))

    async def astats(
        self, by: GroupBy = "session", **filters: Unpack[RunFilters]
    ) -> list[GroupStats]:
        """Aggregates per session, user, graph, model or UTC day (filters as ``alist_runs``)."""
        return await arun(self.pool, queries.stats(by, **filters))

    async def alist_runs(
        self, *, limit: int = 50, cursor: str | None = None, **filters: Unpack[RunFilters]
    ) -> RunPage:
        """Runs newest first, ``{"items", "next_cursor"}``; filters: see ``RunFilters``."""
        return await arun(self.pool, queries.list_runs(limit=limit, cursor=cursor, **filters))


def enable(target: Any, *, capture: Capture | None = None) -> None:
    """Record every LangGraph run in the process into ``target`` (a Database, AsyncDatabase or
    their ``.telemetry``). Only one target at a time; ``disable()`` turns it off."""
    tel = getattr(target, "telemetry", target)
    if not isinstance(tel, _TelemetryBase):
        raise InvalidInput(f"enable() needs a Database, AsyncDatabase or Telemetry, not {target!r}")
    _SLOT.handler = tel.handler_for(capture or tel.capture)


def disable() -> None:
    """Stop process-wide recording (graphs attached with ``instrument`` keep recording)."""
    _SLOT.handler = None
