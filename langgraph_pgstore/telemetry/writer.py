"""The single background writer: one thread, its own connection, batched upserts.

Callbacks append events (``events.py``) to a bounded deque (no lock, no I/O). The thread
drains up to ``batch_size`` events, folds them into rows (``rows.py``) and writes each batch
in one transaction (``sql.write_rows``). Failures are told apart by SQLSTATE:

- **transient** (the server is down or restarting, a deadlock, a lock timeout): the batch is
  kept and retried with backoff (0.05 s doubling to ``retry_max``) while new events wait in
  the deque; past ``max_buffer`` waiting events, new ones are counted in ``lost_events`` and
  logged at WARNING.
- **permanent** (the database refuses the content: data exceptions, limits, constraints,
  privileges): the batch is split in halves until the offending event is alone; that event is
  logged with its key and reason, counted in ``rejected_events``, and everything else is
  written. Retrying such a batch would wedge the writer for good.

Rows carry ``owner_id``, the run's owner learnt from its ``RunStart`` (``tenancy.recorded_owner``)
and remembered for its later events. With tenancy, each batch is written per tenant: the rows
of runs that acted for a tenant follow ``set_config('pgstore.tenant', ...)`` in the batch's
transaction, so row-level security accepts them; nothing extra is sent when no run had one.

At exit (``close``, or the atexit hook) events that could not be written, because the server
is down, are spilled to a file (``spill.py``) and replayed by the next writer of the same
database; if even that fails they are counted in ``lost_events`` and logged at WARNING.
The thread never dies of an error: anything unexpected is logged and the loop goes on;
``status()`` reports its liveness and counters for ``health()``.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias
from uuid import UUID

import psycopg

from .. import errors
from .._ops import run
from ..config import redact_dsn
from . import spill
from .events import Event, LlmEnd, LlmStart, RunEnd, RunStart, StepEnd, StepStart
from .rows import Rows, fold_one
from .sql import write_rows

__all__ = ["TelemetryWriter", "WriterStatus", "is_transient"]

log = logging.getLogger(__name__)

Item: TypeAlias = Event | spill.SpilledRow


def _sqlstate(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        state = getattr(seen, "sqlstate", None)
        if state:
            return str(state)
        seen = seen.__cause__
    return None


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same write can succeed: the package's SQLSTATE classifier
    (``errors.is_transient``) applied to the error and the driver error under it (a failed
    connect arrives as our ``DatabaseUnavailable`` over psycopg's ``OperationalError``)."""
    seen: BaseException | None = exc
    while seen is not None:
        if errors.is_transient(seen):
            return True
        seen = seen.__cause__
    return False


def _fold(rows: Rows, item: Item, max_json_chars: int) -> None:
    if isinstance(item, spill.SpilledRow):
        spill.fold_spilled(rows, item)
    else:
        fold_one(rows, item, max_json_chars)


def describe(item: Item) -> str:
    """Key of an event for a log line: its kind and ids, never its content."""
    if isinstance(item, spill.SpilledRow):
        rid = item.row if item.table == "ended" else item.row.get("id")
        return f"spilled {item.table} row {rid}"
    kind = type(item).__name__
    if isinstance(item, RunStart | RunEnd):
        return f"{kind} run={item.run_id}"
    if isinstance(item, StepStart | StepEnd):
        return f"{kind} step={item.step_id} run={item.run_id}"
    if isinstance(item, LlmStart | LlmEnd):
        return f"{kind} call={item.call_id} run={item.run_id}"
    return kind


@dataclass(frozen=True)
class WriterStatus:
    """What ``health()`` shows about recording."""

    alive: bool
    connected: bool
    pending: int
    lost_events: int
    rejected_events: int
    spilled_events: int
    replayed_rows: int
    last_error: str | None
    healthy: bool
    """Alive, connected and nothing lost: events are spilled, not dropped, while the
    database is away, so only a dead thread or lost events make recording unhealthy."""


#: Runs whose (tenant, owner) the writer remembers for their later events.
MAX_KNOWN_RUNS = 50_000

_live: weakref.WeakSet[TelemetryWriter] = weakref.WeakSet()


@atexit.register
def _flush_all_at_exit() -> None:
    for writer in list(_live):
        writer.close(timeout=5.0)


class TelemetryWriter:
    """Owns the event buffer, the thread and the thread's connection.

    ``enqueue`` is the only method the callback side calls: one comparison and one ``append``.
    ``spill_dir`` (None: no spilling) holds files of events left unwritten at exit.
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
        spill_dir: Path | None = None,
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
        self.spill_dir = spill_dir
        self._spill_key = spill.database_key(url, self._connect_kwargs.get("options"))
        self._buffer: deque[Item] = deque()
        self._inflight: list[Item] = []
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._stop = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._replayed = False
        #: run id -> (tenant, owner) from RunStart events (writer thread only)
        self._scopes: OrderedDict[UUID, tuple[str | None, str | None]] = OrderedDict()
        self._enqueued = 0
        self._processed = 0
        self._reported_lost = 0
        self.lost_events = 0
        self.rejected_events = 0
        self.spilled_events = 0
        self.replayed_rows = 0
        self.written_batches = 0
        self.last_error: str | None = None
        self.on_item: Callable[[Item], None] | None = None
        _live.add(self)

    # --- callback side ---------------------------------------------------------------------
    def enqueue(self, event: Event) -> None:
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
        """Events enqueued and not yet written (or rejected)."""
        return self._enqueued - self._processed

    @property
    def alive(self) -> bool:
        """The thread runs (or has not been needed yet)."""
        return self._thread is None or self._thread.is_alive()

    def status(self) -> WriterStatus:
        """Liveness and counters; restarts the thread if it ever died."""
        if not self.alive and not self._stop:
            log.error("telemetry writer thread had died; restarting it")
            self._thread = None
            self._start()
        connected = self._conn is not None and not self._conn.closed and not self.last_error
        return WriterStatus(
            alive=self.alive,
            connected=connected,
            pending=self.pending,
            lost_events=self.lost_events,
            rejected_events=self.rejected_events,
            spilled_events=self.spilled_events,
            replayed_rows=self.replayed_rows,
            last_error=self.last_error,
            healthy=self.alive and self.lost_events == 0,
        )

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop:
                self._thread = threading.Thread(
                    target=self._loop, name="pgstore-telemetry-writer", daemon=True
                )
                self._thread.start()

    def start(self) -> None:
        """Start the thread now (it also starts on the first event): replays spill files."""
        self._start()

    def replay(self, timeout: float = 30.0) -> int:
        """Replay spill files of this database now (the thread also does on its first start);
        waits up to ``timeout`` seconds and returns the number of rows replayed so far."""
        self._replayed = False
        self._start()
        self._wake.set()
        deadline = time.monotonic() + timeout
        while not self._replayed and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.replayed_rows

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
        """Flush, stop the thread and close its connection; True when everything was written.

        When the server is unreachable the wait is cut to about a second, and whatever is
        still unwritten goes to a spill file for the next start.
        """
        if self._closed:
            return self.pending == 0
        self._closed = True
        if self._thread is not None:
            wait = timeout if self.last_error is None else min(timeout or 1.0, 1.0)
            flushed = self.flush(wait)
        else:
            flushed = self.pending == 0
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=1.0 if timeout is None else max(0.1, min(timeout, 1.0)))
        if not flushed:
            self._spill_pending()
        _live.discard(self)
        return flushed

    # --- writer thread ---------------------------------------------------------------------
    def _loop(self) -> None:
        retry = 0.0
        while True:
            try:
                if not self._replayed:
                    self._replay()
                if not self._inflight:
                    if not self._buffer:
                        if self._stop:
                            break
                        self._wake.wait(self.interval)
                        self._wake.clear()
                        continue
                    self._inflight = self._take()
                self._commit(self._inflight)
            except Exception as exc:
                if is_transient(exc):
                    self._lost_connection(exc)
                else:  # a bug of ours: never let it kill recording
                    log.exception("telemetry writer: unexpected error; carrying on")
                if self._stop:
                    break
                retry = min(self.retry_max, retry * 2 if retry else 0.05)
                self._wake.wait(retry)
                self._wake.clear()
                continue
            retry = 0.0
            self._report_lost()  # before _finish: a flush() that returns has seen the log line
            if self._inflight:
                self._finish(len(self._inflight))
                self._inflight = []
        self._report_lost()
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def _take(self) -> list[Item]:
        buf = self._buffer
        n = min(len(buf), self.batch_size)
        batch = [buf.popleft() for _ in range(n)]
        if self.on_item is not None:
            for item in batch:
                try:
                    self.on_item(item)
                except Exception:  # an exporter must not stop the database recording
                    log.exception("telemetry exporter failed on %s", describe(item))
        return batch

    def _finish(self, n: int) -> None:
        with self._done:
            self._processed += n
            self.written_batches += 1
            self._done.notify_all()

    def _commit(self, items: list[Item]) -> None:
        """Write ``items``; on a permanent error split them until the culprit is alone.

        A transient error propagates (the caller retries the whole batch: upserts are
        idempotent, so halves already committed are written again harmlessly).
        """
        if self._write_or_split(items):
            ended = [i.run_id for i in items if isinstance(i, RunEnd)]
            ended += [i.row for i in items if type(i) is spill.SpilledRow and i.table == "ended"]
            if ended:  # halves may have closed their runs before the other half's starts
                tenants = {rid: t for rid, (t, _) in self._scopes.items() if t is not None}
                only_ended = Rows(
                    ended=ended, tenants={r: tenants[r] for r in ended if r in tenants}
                )
                run(self._connection(), write_rows(only_ended))

    def _write_or_split(self, items: list[Item]) -> bool:
        """True when the batch had to be split (something in it was rejected)."""
        try:
            self._write(items)
            return False
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(items) == 1:
                self._reject(items[0], exc)
                return True
        mid = len(items) // 2
        self._write_or_split(items[:mid])
        self._write_or_split(items[mid:])
        return True

    def _reject(self, item: Item, exc: BaseException) -> None:
        self.rejected_events += 1
        cause = exc.__cause__ or exc
        state = _sqlstate(exc)
        log.warning(
            "telemetry event rejected (%s): %s%s: %s",
            describe(item),
            type(cause).__name__,
            f" [{state}]" if state else "",
            str(cause).strip().splitlines()[0][:300] if str(cause).strip() else "",
        )

    def _write(self, items: Iterable[Item]) -> None:
        run(self._connection(), write_rows(self._rows(items)))

    def _rows(
        self, items: Iterable[Item], on_error: Callable[[Item, Exception], None] | None = None
    ) -> Rows:
        """Fold ``items`` and stamp every row with its run's owner (and its tenant); with
        ``on_error``, an item that can't be folded is reported there and skipped."""
        rows = Rows()
        jmax = self.max_json_chars
        for item in items:
            if type(item) is RunStart:
                self._remember(item)
            try:
                _fold(rows, item, jmax)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(item, exc)
        scopes = self._scopes
        for rid, row in rows.runs.items():
            self._stamp(rows, rid, row, scopes.get(rid))
        for row in (*rows.steps.values(), *rows.calls.values()):
            self._stamp(rows, row["run_id"], row, scopes.get(row["run_id"]))
        for rid in rows.ended:
            scope = scopes.get(rid)
            if scope is not None and scope[0] is not None:
                rows.tenants[rid] = scope[0]
        return rows

    @staticmethod
    def _stamp(
        rows: Rows, rid: UUID, row: dict[str, Any], scope: tuple[str | None, str | None] | None
    ) -> None:
        # Every row names its owner: row-level security checks the proposed INSERT row even
        # when it ends as an update of an existing one. Spilled rows already carry theirs.
        if scope is None:
            return
        tenant, owner = scope
        row["owner_id"] = owner
        if tenant is not None:
            rows.tenants[rid] = tenant

    def _remember(self, ev: RunStart) -> None:
        """The (tenant, owner) of a run, for its later events (bounded, oldest forgotten)."""
        scopes = self._scopes
        scopes[ev.run_id] = (ev.tenant, ev.owner)
        scopes.move_to_end(ev.run_id)
        while len(scopes) > MAX_KNOWN_RUNS:
            scopes.popitem(last=False)

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
        cause = exc.__cause__ or exc
        msg = f"telemetry writer can't reach {redact_dsn(self.url)}: {type(cause).__name__}"
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

    # --- spilling ----------------------------------------------------------------------------
    def _spill_pending(self) -> None:
        items = [*self._inflight, *self._buffer]
        if not items:
            return
        n = len(items)
        if self.spill_dir is None:
            self._drop_pending(n)
            self._count_lost(n, "no spill directory configured")
            return
        try:
            rows = self._rows(items, on_error=self._reject)
            path, _ = spill.write(self.spill_dir, self._spill_key, rows)
        except Exception as exc:
            self._count_lost(n, f"spill failed: {type(exc).__name__}: {exc}")
            return
        finally:
            self._drop_pending(n)
        self.spilled_events += n
        log.warning(
            "telemetry: database unreachable at exit; %d events spilled to %s "
            "(replayed on the next start)",
            n,
            path,
        )

    def _drop_pending(self, n: int) -> None:
        """Events handed to a spill file (or lost) are no longer pending."""
        self._inflight = []
        self._buffer.clear()
        with self._done:
            self._processed += n
            self._done.notify_all()

    def _count_lost(self, n: int, reason: str) -> None:
        self.lost_events += n
        self._reported_lost = self.lost_events
        log.warning("telemetry: %d unwritten events lost at exit (%s)", n, reason)

    def _replay(self) -> None:
        """Write rows spilled by earlier processes for this database (once per thread)."""
        if self.spill_dir is None:
            self._replayed = True
            return
        for path in spill.claim(self.spill_dir, self._spill_key):
            items: list[Item] = list(spill.read(path))
            for start in range(0, len(items), self.batch_size):
                self._commit(items[start : start + self.batch_size])  # transient: retried
            path.unlink(missing_ok=True)
            n = sum(1 for i in items if isinstance(i, spill.SpilledRow) and i.table in spill.ROWS)
            self.replayed_rows += n
            log.warning("telemetry: replayed %d spilled rows from %s", n, path.name)
        self._replayed = True
