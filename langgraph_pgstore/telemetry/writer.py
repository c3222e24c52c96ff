"""The single background writer: one thread, its own connection, batched upserts.

Callbacks append raw event tuples to a bounded deque (no lock, no I/O). The thread drains up to
``batch_size`` events, folds starts and ends of the same row together, turns Python objects into
rows (JSON summaries, tokens, cost) and writes each batch in one transaction:

1. stub ``runs`` rows for every run a step or call points at (a start lost to overflow must not
   make its children fail the foreign key),
2. upserts of runs, steps and llm_calls (``ON CONFLICT (id) DO UPDATE`` with COALESCE, so a start
   and an end written in different batches, in either order, meet in one row),
3. closing of orphans: when a run ends, steps and calls still 'running' (a cancelled LLM call
   never reports an end) take the run's terminal status.

Rows carry ``owner_id`` (the run's owner, learnt from its ``run_start`` and remembered for its
children). With tenancy, each batch is written per tenant: the rows of runs that acted for a
tenant are written after ``set_config('pgstore.tenant', ...)`` in the batch's transaction, so
row-level security accepts them; nothing extra is sent when no run had a tenant.

When the database is down the failed batch is kept and retried with backoff while new events
wait in the deque; past ``max_buffer`` events are counted in ``lost_events`` and logged.
A batch the database rejects for its content (not for being down) is retried row by row and the
bad rows are dropped, counted and logged, so one odd value never wedges the writer.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from ..config import redact_dsn
from ..tenancy import SET_TENANT_SQL
from .pricing import cost_usd

__all__ = ["TelemetryWriter", "summarize"]

log = logging.getLogger(__name__)

UPSERT_RUN_STUBS = """
INSERT INTO runs (id, owner_id) SELECT * FROM unnest(%s::uuid[], %s::text[])
ON CONFLICT (id) DO NOTHING
"""

UPSERT_RUNS = """
INSERT INTO runs AS r (id, graph_name, thread_id, user_id, status, input_summary, output_summary,
                       error_type, error_message, trace_id, idempotency_key, metadata,
                       started_at, completed_at, owner_id)
VALUES (%(id)s, %(graph_name)s, %(thread_id)s, %(user_id)s, COALESCE(%(status)s, 'running'),
        %(input_summary)s, %(output_summary)s, %(error_type)s, %(error_message)s, %(trace_id)s,
        (SELECT %(idempotency_key)s::text
          WHERE NOT EXISTS (SELECT 1 FROM runs x WHERE x.idempotency_key = %(idempotency_key)s
                                                   AND x.id <> %(id)s)),
        COALESCE(%(metadata)s, '{}'::jsonb), COALESCE(%(started_at)s, now()), %(completed_at)s,
        %(owner_id)s)
ON CONFLICT (id) DO UPDATE SET
    owner_id = COALESCE(r.owner_id, EXCLUDED.owner_id),
    graph_name = COALESCE(EXCLUDED.graph_name, r.graph_name),
    thread_id = COALESCE(EXCLUDED.thread_id, r.thread_id),
    user_id = COALESCE(EXCLUDED.user_id, r.user_id),
    status = CASE WHEN %(status)s IS NULL OR %(status)s = 'running' THEN r.status
                  ELSE EXCLUDED.status END,
    input_summary = COALESCE(EXCLUDED.input_summary, r.input_summary),
    output_summary = COALESCE(EXCLUDED.output_summary, r.output_summary),
    error_type = COALESCE(EXCLUDED.error_type, r.error_type),
    error_message = COALESCE(EXCLUDED.error_message, r.error_message),
    trace_id = COALESCE(EXCLUDED.trace_id, r.trace_id),
    idempotency_key = COALESCE(r.idempotency_key, EXCLUDED.idempotency_key),
    metadata = CASE WHEN %(metadata)s IS NULL THEN r.metadata ELSE EXCLUDED.metadata END,
    started_at = COALESCE(%(started_at)s, r.started_at),
    completed_at = COALESCE(EXCLUDED.completed_at, r.completed_at)
"""

UPSERT_STEPS = """
INSERT INTO steps AS s (id, run_id, parent_step_id, kind, node_name, step_number, triggers,
                        checkpoint_ns, task_id, attempt, input_data, output_data, status,
                        error_type, error_message, started_at, completed_at, owner_id)
VALUES (%(id)s, %(run_id)s, %(parent_step_id)s, COALESCE(%(kind)s, 'node'), %(node_name)s,
        %(step_number)s, %(triggers)s, COALESCE(%(checkpoint_ns)s, ''), %(task_id)s,
        COALESCE(%(attempt)s, 1), %(input_data)s, %(output_data)s,
        COALESCE(%(status)s, 'running'), %(error_type)s, %(error_message)s,
        COALESCE(%(started_at)s, now()), %(completed_at)s, %(owner_id)s)
ON CONFLICT (id) DO UPDATE SET
    owner_id = COALESCE(s.owner_id, EXCLUDED.owner_id),
    parent_step_id = COALESCE(EXCLUDED.parent_step_id, s.parent_step_id),
    kind = COALESCE(%(kind)s, s.kind),
    step_number = COALESCE(EXCLUDED.step_number, s.step_number),
    triggers = COALESCE(EXCLUDED.triggers, s.triggers),
    checkpoint_ns = COALESCE(%(checkpoint_ns)s, s.checkpoint_ns),
    task_id = COALESCE(EXCLUDED.task_id, s.task_id),
    attempt = COALESCE(%(attempt)s, s.attempt),
    input_data = COALESCE(EXCLUDED.input_data, s.input_data),
    output_data = COALESCE(EXCLUDED.output_data, s.output_data),
    status = CASE WHEN %(status)s IS NULL OR %(status)s = 'running' THEN s.status
                  ELSE EXCLUDED.status END,
    error_type = COALESCE(EXCLUDED.error_type, s.error_type),
    error_message = COALESCE(EXCLUDED.error_message, s.error_message),
    started_at = COALESCE(%(started_at)s, s.started_at),
    completed_at = COALESCE(EXCLUDED.completed_at, s.completed_at)
"""

UPSERT_LLM_CALLS = """
INSERT INTO llm_calls AS c (id, run_id, step_id, thread_id, operation_name, provider_name,
                            request_model, response_model, response_id, finish_reasons,
                            input_tokens, output_tokens, total_tokens, cache_read_input_tokens,
                            cache_creation_input_tokens, reasoning_output_tokens, cost_usd,
                            latency_ms, time_to_first_chunk_ms, streamed, status, error_type,
                            error_message, started_at, completed_at, owner_id)
VALUES (%(id)s, %(run_id)s, %(step_id)s, %(thread_id)s, COALESCE(%(operation_name)s, 'chat'),
        %(provider_name)s, %(request_model)s, %(response_model)s, %(response_id)s,
        %(finish_reasons)s, %(input_tokens)s, %(output_tokens)s, %(total_tokens)s,
        %(cache_read_input_tokens)s, %(cache_creation_input_tokens)s,
        %(reasoning_output_tokens)s, %(cost_usd)s, %(latency_ms)s, %(time_to_first_chunk_ms)s,
        COALESCE(%(streamed)s, false), COALESCE(%(status)s, 'running'), %(error_type)s,
        %(error_message)s, COALESCE(%(started_at)s, now()), %(completed_at)s, %(owner_id)s)
ON CONFLICT (id) DO UPDATE SET
    owner_id = COALESCE(c.owner_id, EXCLUDED.owner_id),
    step_id = COALESCE(EXCLUDED.step_id, c.step_id),
    thread_id = COALESCE(EXCLUDED.thread_id, c.thread_id),
    operation_name = COALESCE(%(operation_name)s, c.operation_name),
    provider_name = COALESCE(EXCLUDED.provider_name, c.provider_name),
    request_model = COALESCE(EXCLUDED.request_model, c.request_model),
    response_model = COALESCE(EXCLUDED.response_model, c.response_model),
    response_id = COALESCE(EXCLUDED.response_id, c.response_id),
    finish_reasons = COALESCE(EXCLUDED.finish_reasons, c.finish_reasons),
    input_tokens = COALESCE(EXCLUDED.input_tokens, c.input_tokens),
    output_tokens = COALESCE(EXCLUDED.output_tokens, c.output_tokens),
    total_tokens = COALESCE(EXCLUDED.total_tokens, c.total_tokens),
    cache_read_input_tokens = COALESCE(EXCLUDED.cache_read_input_tokens,
                                       c.cache_read_input_tokens),
    cache_creation_input_tokens = COALESCE(EXCLUDED.cache_creation_input_tokens,
                                           c.cache_creation_input_tokens),
    reasoning_output_tokens = COALESCE(EXCLUDED.reasoning_output_tokens,
                                       c.reasoning_output_tokens),
    cost_usd = COALESCE(EXCLUDED.cost_usd, c.cost_usd),
    latency_ms = COALESCE(EXCLUDED.latency_ms, c.latency_ms),
    time_to_first_chunk_ms = COALESCE(EXCLUDED.time_to_first_chunk_ms, c.time_to_first_chunk_ms),
    streamed = COALESCE(%(streamed)s, c.streamed),
    status = CASE WHEN %(status)s IS NULL OR %(status)s = 'running' THEN c.status
                  ELSE EXCLUDED.status END,
    error_type = COALESCE(EXCLUDED.error_type, c.error_type),
    error_message = COALESCE(EXCLUDED.error_message, c.error_message),
    started_at = COALESCE(%(started_at)s, c.started_at),
    completed_at = COALESCE(EXCLUDED.completed_at, c.completed_at)
"""

# Orphans take the run's terminal status (and its error when they have none of their own).
CLOSE_ORPHAN_STEPS = """
UPDATE steps s SET status = r.status, completed_at = r.completed_at,
       error_type = COALESCE(s.error_type, r.error_type),
       error_message = COALESCE(s.error_message, r.error_message)
  FROM runs r
 WHERE r.id = ANY(%s::uuid[]) AND s.run_id = r.id AND s.status = 'running'
   AND r.status <> 'running'
"""
CLOSE_ORPHAN_LLM_CALLS = """
UPDATE llm_calls c SET status = r.status, completed_at = r.completed_at,
       error_type = COALESCE(c.error_type, r.error_type),
       error_message = COALESCE(c.error_message, r.error_message)
  FROM runs r
 WHERE r.id = ANY(%s::uuid[]) AND c.run_id = r.id AND c.status = 'running'
   AND r.status <> 'running'
"""

RUN_COLS = (
    "graph_name",
    "thread_id",
    "user_id",
    "status",
    "input_summary",
    "output_summary",
    "error_type",
    "error_message",
    "trace_id",
    "idempotency_key",
    "metadata",
    "started_at",
    "completed_at",
    "owner_id",
)
STEP_COLS = (
    "run_id",
    "parent_step_id",
    "kind",
    "node_name",
    "step_number",
    "triggers",
    "checkpoint_ns",
    "task_id",
    "attempt",
    "input_data",
    "output_data",
    "status",
    "error_type",
    "error_message",
    "started_at",
    "completed_at",
    "owner_id",
)
LLM_COLS = (
    "run_id",
    "step_id",
    "thread_id",
    "operation_name",
    "provider_name",
    "request_model",
    "response_model",
    "response_id",
    "finish_reasons",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_output_tokens",
    "cost_usd",
    "latency_ms",
    "time_to_first_chunk_ms",
    "streamed",
    "status",
    "error_type",
    "error_message",
    "started_at",
    "completed_at",
    "owner_id",
)

# Metadata keys copied onto the run row (small, JSON-safe, useful for filtering).
_RUN_META_KEYS = ("assistant_id", "graph_id", "checkpoint_ns", "session_id", "tags")
MAX_ERROR_CHARS = 2000
#: Runs whose (tenant, owner) the writer remembers for events arriving in later batches.
MAX_KNOWN_RUNS = 50_000

# --- turning Python objects into JSON summaries --------------------------------------------


def _default(obj: Any) -> Any:
    from langchain_core.messages import BaseMessage

    if isinstance(obj, BaseMessage):
        out: dict[str, Any] = {"type": obj.type, "content": obj.content}
        if obj.id:
            out["id"] = obj.id
        tool_calls = getattr(obj, "tool_calls", None)
        if tool_calls:
            out["tool_calls"] = tool_calls
        return out
    if isinstance(obj, UUID | Decimal | datetime):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    if hasattr(obj, "model_dump"):
        try:
            return obj.model_dump(mode="json")
        except Exception:  # a summary must never fail the batch
            return repr(obj)[:200]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"__type__": type(obj).__name__, **fields}
    if isinstance(obj, BaseException):
        return {"__type__": type(obj).__name__, "message": str(obj)[:MAX_ERROR_CHARS]}
    return repr(obj)[:200]


def _identity(text: str) -> str:
    return text


def summarize(obj: Any, max_chars: int) -> Jsonb | None:
    """A JSON value for ``obj``, replaced by a truncated preview when longer than ``max_chars``.

    Serialised once here; psycopg sends the text as is (no second dump).
    """
    if obj is None:
        return None
    try:
        text = json.dumps(obj, default=_default, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return Jsonb({"__unserializable__": type(obj).__name__, "error": str(exc)[:200]})
    text = text.replace("\\u0000", "")  # PostgreSQL jsonb rejects NUL
    if len(text) > max_chars:
        return Jsonb({"__truncated__": True, "chars": len(text), "preview": text[:max_chars]})
    return Jsonb(text, dumps=_identity)


def _ts(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def _error(exc: BaseException | None) -> tuple[str | None, str | None]:
    if exc is None:
        return None, None
    return type(exc).__name__, (str(exc) or repr(exc))[:MAX_ERROR_CHARS].replace("\x00", "")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_llm_result(response: Any) -> dict[str, Any]:
    """Tokens, response model/id and finish reasons from an ``LLMResult``.

    Prefers the normalised ``usage_metadata`` of the first choice (never summed across
    choices: n>1 repeats the full usage), falls back to the provider's raw ``llm_output``.
    Unknown stays None, never 0.
    """
    out: dict[str, Any] = {}
    gens = getattr(response, "generations", None) or []
    first = gens[0][0] if gens and gens[0] else None
    msg = getattr(first, "message", None)
    llm_output = getattr(response, "llm_output", None) or {}
    meta: Mapping[str, Any] = getattr(msg, "response_metadata", None) or {}
    usage = getattr(msg, "usage_metadata", None)
    if usage:
        inp = usage.get("input_token_details") or {}
        outp = usage.get("output_token_details") or {}
        out["input_tokens"] = _int(usage.get("input_tokens"))
        out["output_tokens"] = _int(usage.get("output_tokens"))
        out["total_tokens"] = _int(usage.get("total_tokens"))
        out["cache_read_input_tokens"] = _int(inp.get("cache_read"))
        out["cache_creation_input_tokens"] = _int(inp.get("cache_creation"))
        out["reasoning_output_tokens"] = _int(outp.get("reasoning"))
    elif isinstance(llm_output.get("token_usage"), Mapping):  # OpenAI raw
        tu = llm_output["token_usage"]
        out["input_tokens"] = _int(tu.get("prompt_tokens"))
        out["output_tokens"] = _int(tu.get("completion_tokens"))
        out["total_tokens"] = _int(tu.get("total_tokens"))
        out["cache_read_input_tokens"] = _int(
            (tu.get("prompt_tokens_details") or {}).get("cached_tokens")
        )
        out["reasoning_output_tokens"] = _int(
            (tu.get("completion_tokens_details") or {}).get("reasoning_tokens")
        )
    elif isinstance(llm_output.get("usage"), Mapping):  # Anthropic raw: input excludes cache
        u = llm_output["usage"]
        read = _int(u.get("cache_read_input_tokens"))
        write = _int(u.get("cache_creation_input_tokens"))
        base = _int(u.get("input_tokens"))
        out["input_tokens"] = None if base is None else base + (read or 0) + (write or 0)
        out["output_tokens"] = _int(u.get("output_tokens"))
        if out["input_tokens"] is not None and out["output_tokens"] is not None:
            out["total_tokens"] = out["input_tokens"] + out["output_tokens"]
        out["cache_read_input_tokens"] = read
        out["cache_creation_input_tokens"] = write
    out["response_model"] = (
        meta.get("model_name")
        or meta.get("model")
        or llm_output.get("model_name")
        or llm_output.get("model")
    )
    out["response_id"] = meta.get("id") or llm_output.get("id") or getattr(msg, "id", None)
    reasons: list[str] = []
    for choice in gens:
        if not choice:
            continue
        info = getattr(choice[0], "generation_info", None) or {}
        cmeta = getattr(getattr(choice[0], "message", None), "response_metadata", None) or {}
        reason = info.get("finish_reason") or cmeta.get("finish_reason") or cmeta.get("stop_reason")
        if reason:
            reasons.append(str(reason))
    out["finish_reasons"] = reasons or None
    return out


# --- the writer ------------------------------------------------------------------------------

_live: weakref.WeakSet[TelemetryWriter] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for writer in list(_live):
        writer.close(timeout=5.0)


class TelemetryWriter:
    """Owns the event buffer, the thread and the thread's connection.

    ``enqueue`` is the only method the callback side calls: one ``len`` and one ``append``.
    """

    def __init__(
        self,
        url: str,
        connect_kwargs: Mapping[str, Any] | None = None,
        *,
        max_buffer: int = 100_000,
        batch_size: int = 2_000,
        max_json_chars: int = 4_000,
        interval: float = 0.05,
        retry_max: float = 5.0,
        connect: Callable[[], psycopg.Connection[Any]] | None = None,
    ) -> None:
        self.url = url
        self._connect_kwargs = dict(connect_kwargs or {})
        self._connect_kwargs["autocommit"] = True
        self._connect = connect
        self.max_buffer = max_buffer
        self.batch_size = batch_size
        self.max_json_chars = max_json_chars
        self.interval = interval
        self.retry_max = retry_max
        self._buffer: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._enqueued = 0
        self._processed = 0
        self._reported_lost = 0
        #: run id -> (tenant, owner), from run_start events (writer thread only).
        self._scopes: OrderedDict[UUID, tuple[str | None, str | None]] = OrderedDict()
        self.lost_events = 0
        self.dropped_rows = 0
        self.written_batches = 0
        self.last_error: str | None = None
        _live.add(self)

    # --- callback side ---------------------------------------------------------------------
    def enqueue(self, event: tuple[Any, ...]) -> None:
        """Append one event, or count it lost when ``max_buffer`` events already wait
        (queued or in the batch being retried). Never blocks."""
        if self._enqueued - self._processed >= self.max_buffer:
            self.lost_events += 1
            return
        self._buffer.append(event)
        self._enqueued += 1
        if self._thread is None:
            self._start()

    @property
    def pending(self) -> int:
        """Events enqueued and not yet written (or dropped)."""
        return self._enqueued - self._processed

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop:
                self._thread = threading.Thread(
                    target=self._loop, name="pgstore-telemetry-writer", daemon=True
                )
                self._thread.start()

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every event enqueued so far is written; False if ``timeout`` passed first."""
        target = self._enqueued
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._done:
            while self._processed < target:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._done.wait(0.05 if remaining is None else min(remaining, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float | None = 10.0) -> bool:
        """Flush, stop the thread and close its connection; True when everything was written."""
        flushed = self.flush(timeout) if self._thread is not None else self.pending == 0
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=1.0 if timeout is None else max(0.1, min(timeout, 1.0)))
        _live.discard(self)
        return flushed

    # --- writer thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        retry = 0.0
        batch: list[tuple[Any, ...]] = []
        while True:
            if not batch:
                if not self._buffer:
                    if self._stop:
                        break
                    self._wake.wait(self.interval)
                    self._wake.clear()
                    continue
                batch = self._take()
            try:
                self._write(batch)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._lost_connection(exc)
                if self._stop:
                    break
                retry = min(self.retry_max, retry * 2 if retry else 0.05)
                self._wake.wait(retry)
                self._wake.clear()
                continue
            except Exception as exc:  # a bad row must not stop recording
                log.warning("telemetry batch rejected (%s); retrying row by row", exc)
                self._write_one_by_one(batch)
            retry = 0.0
            self._finish(len(batch))
            batch = []
            self._report_lost()
        self._report_lost()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _take(self) -> list[tuple[Any, ...]]:
        buf = self._buffer
        n = min(len(buf), self.batch_size)
        return [buf.popleft() for _ in range(n)]

    def _finish(self, n: int) -> None:
        with self._done:
            self._processed += n
            self.written_batches += 1
            self._done.notify_all()

    def _report_lost(self) -> None:
        lost = self.lost_events
        if lost != self._reported_lost:
            log.warning(
                "telemetry buffer full (%d events): %d events lost so far",
                self.max_buffer,
                lost,
            )
            self._reported_lost = lost

    def _lost_connection(self, exc: BaseException) -> None:
        msg = f"telemetry writer can't reach {redact_dsn(self.url)}: {type(exc).__name__}"
        if self.last_error != msg:
            log.warning("%s; buffering events (%d pending)", msg, self.pending)
        self.last_error = msg
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            if self._connect is not None:
                self._conn = self._connect()
            else:
                self._conn = psycopg.connect(self.url, **self._connect_kwargs)
            if self.last_error is not None:
                log.warning("telemetry writer reconnected; writing buffered events")
                self.last_error = None
        return self._conn

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        rows = self.rows(batch)
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cur:
            self._execute_per_tenant(cur, *rows)

    def _execute_per_tenant(self, cur: psycopg.Cursor[Any], *rows: Any) -> None:
        """:meth:`_execute` of :meth:`rows` once per tenant of the batch's runs, unscoped rows
        first (so no reset is needed), each group after setting its tenant in the transaction."""
        runs, steps, calls, ended = rows

        def tenant(rid: UUID) -> str | None:
            return self._scopes.get(rid, (None, None))[0]

        tenants = sorted(
            {tenant(r) for r in runs}
            | {tenant(r["run_id"]) for r in steps.values()}
            | {tenant(r["run_id"]) for r in calls.values()}
            | {tenant(rid) for rid in ended},
            key=lambda t: (t is not None, t or ""),
        )
        if tenants == [None]:
            self._execute(cur, runs, steps, calls, ended)
            return
        for t in tenants:
            if t is not None:
                cur.execute(SET_TENANT_SQL, (t,))
            self._execute(
                cur,
                {k: v for k, v in runs.items() if tenant(k) == t},
                {k: v for k, v in steps.items() if tenant(v["run_id"]) == t},
                {k: v for k, v in calls.items() if tenant(v["run_id"]) == t},
                [rid for rid in ended if tenant(rid) == t],
            )

    @staticmethod
    def _execute(
        cur: psycopg.Cursor[Any],
        runs: dict[UUID, dict[str, Any]],
        steps: dict[UUID, dict[str, Any]],
        calls: dict[UUID, dict[str, Any]],
        ended: Iterable[UUID],
    ) -> None:
        referenced = {r["run_id"]: r["owner_id"] for r in (*steps.values(), *calls.values())}
        stubs = [(rid, owner) for rid, owner in referenced.items() if rid not in runs]
        if stubs:
            cur.execute(UPSERT_RUN_STUBS, ([r for r, _ in stubs], [o for _, o in stubs]))
        if runs:
            cur.executemany(UPSERT_RUNS, list(runs.values()))
        if steps:
            cur.executemany(UPSERT_STEPS, list(steps.values()))
        if calls:
            cur.executemany(UPSERT_LLM_CALLS, list(calls.values()))
        ended = list(ended)
        if ended:
            cur.execute(CLOSE_ORPHAN_STEPS, (ended,))
            cur.execute(CLOSE_ORPHAN_LLM_CALLS, (ended,))

    def _write_one_by_one(self, batch: list[tuple[Any, ...]]) -> None:
        for event in batch:
            try:
                rows = self.rows([event])
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    self._execute_per_tenant(cur, *rows)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._lost_connection(exc)
                self.dropped_rows += 1
            except Exception as exc:  # drop this row, keep the rest
                self.dropped_rows += 1
                log.warning("telemetry event %s dropped: %s", event[0], exc)

    # --- folding events into rows ----------------------------------------------------------
    def rows(
        self, batch: Iterable[tuple[Any, ...]]
    ) -> tuple[
        dict[UUID, dict[str, Any]],
        dict[UUID, dict[str, Any]],
        dict[UUID, dict[str, Any]],
        list[UUID],
    ]:
        """Fold a batch of events into one row per id (later non-None values win)."""
        runs: dict[UUID, dict[str, Any]] = {}
        steps: dict[UUID, dict[str, Any]] = {}
        calls: dict[UUID, dict[str, Any]] = {}
        ended: list[UUID] = []
        jmax = self.max_json_chars

        def merge(
            table: dict[UUID, dict[str, Any]],
            cols: tuple[str, ...],
            rid: UUID,
            values: dict[str, Any],
        ) -> None:
            row = table.get(rid)
            if row is None:
                row = dict.fromkeys(cols)
                row["id"] = rid
                table[rid] = row
            for key, value in values.items():
                if value is not None:
                    row[key] = value

        for ev in batch:
            kind = ev[0]
            if kind == "run_start":
                _, rid, name, thread_id, md, inputs, t, *scope = ev
                tenant, owner = scope if scope else (None, _str(md.get("user_id")))
                self._remember(rid, tenant, owner)
                meta = {k: md[k] for k in _RUN_META_KEYS if k in md and md[k] is not None}
                if _is_resume(inputs):
                    meta["resume"] = True
                merge(
                    runs,
                    RUN_COLS,
                    rid,
                    {
                        "graph_name": name,
                        "thread_id": thread_id,
                        "user_id": _str(md.get("user_id")),
                        "status": "running",
                        "input_summary": summarize(inputs, jmax),
                        "trace_id": _str(md.get("trace_id")) or str(rid),
                        "idempotency_key": _str(md.get("idempotency_key")),
                        "metadata": summarize(meta, jmax),
                        "started_at": _ts(t),
                    },
                )
            elif kind == "run_end":
                _, rid, status, outputs, error, t = ev
                etype, emsg = _error(error)
                merge(
                    runs,
                    RUN_COLS,
                    rid,
                    {
                        "status": status,
                        "output_summary": summarize(outputs, jmax),
                        "error_type": etype,
                        "error_message": emsg,
                        "completed_at": _ts(t),
                    },
                )
                ended.append(rid)
            elif kind == "step_start":
                (
                    _,
                    sid,
                    rid,
                    parent,
                    skind,
                    name,
                    number,
                    triggers,
                    ns,
                    task_id,
                    attempt,
                    inputs,
                    t,
                ) = ev
                merge(
                    steps,
                    STEP_COLS,
                    sid,
                    {
                        "run_id": rid,
                        "parent_step_id": parent,
                        "kind": skind,
                        "node_name": name,
                        "step_number": _int(number),
                        "triggers": [str(x) for x in triggers] if triggers else None,
                        "checkpoint_ns": ns,
                        "task_id": task_id,
                        "attempt": attempt,
                        "input_data": summarize(inputs, jmax),
                        "status": "running",
                        "started_at": _ts(t),
                    },
                )
            elif kind == "step_end":
                _, sid, rid, name, status, outputs, error, t = ev
                etype, emsg = _error(error)
                if status == "interrupted" and error is not None:
                    outputs = getattr(error, "args", None) or outputs
                merge(
                    steps,
                    STEP_COLS,
                    sid,
                    {
                        "run_id": rid,
                        "node_name": name or "?",
                        "status": status,
                        "output_data": summarize(outputs, jmax),
                        "error_type": etype,
                        "error_message": emsg,
                        "completed_at": _ts(t),
                    },
                )
            elif kind == "llm_start":
                _, cid, rid, step_id, thread_id, operation, provider, model, t = ev
                merge(
                    calls,
                    LLM_COLS,
                    cid,
                    {
                        "run_id": rid,
                        "step_id": step_id,
                        "thread_id": thread_id,
                        "operation_name": operation,
                        "provider_name": _str(provider),
                        "request_model": _str(model),
                        "status": "running",
                        "started_at": _ts(t),
                    },
                )
            elif kind == "llm_end":
                _, cid, rid, status, response, error, t0, first, t1, model, provider = ev
                etype, emsg = _error(error)
                values = parse_llm_result(response) if response is not None else {}
                values.update(
                    {
                        "run_id": rid,
                        "status": status,
                        "error_type": etype,
                        "error_message": emsg,
                        "completed_at": _ts(t1),
                        "latency_ms": (t1 - t0) * 1000.0 if t0 else None,
                        "time_to_first_chunk_ms": (first - t0) * 1000.0 if first and t0 else None,
                        "streamed": first is not None,
                        "request_model": _str(model),
                        "provider_name": _str(provider),
                    }
                )
                merge(calls, LLM_COLS, cid, values)
                row = calls[cid]
                row["cost_usd"] = (
                    cost_usd(
                        row["request_model"] or row["response_model"],
                        row["provider_name"],
                        row["input_tokens"],
                        row["output_tokens"],
                        row["cache_read_input_tokens"],
                        row["cache_creation_input_tokens"],
                    )
                    if row["input_tokens"] is not None
                    else None
                )
        for row in steps.values():
            if row["node_name"] is None:
                row["node_name"] = "?"
        # Every row names its owner: row-level security checks the proposed INSERT row even
        # when it ends as an update of an existing one.
        for rid, row in runs.items():
            row["owner_id"] = self._scopes.get(rid, (None, None))[1]
        for row in (*steps.values(), *calls.values()):
            row["owner_id"] = self._scopes.get(row["run_id"], (None, None))[1]
        return runs, steps, calls, ended

    def _remember(self, run_id: UUID, tenant: str | None, owner: str | None) -> None:
        self._scopes[run_id] = (tenant, owner)
        self._scopes.move_to_end(run_id)
        while len(self._scopes) > MAX_KNOWN_RUNS:
            self._scopes.popitem(last=False)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _is_resume(inputs: Any) -> bool:
    from langgraph.types import Command

    return isinstance(inputs, Command) and inputs.resume is not None
