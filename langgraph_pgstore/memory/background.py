"""Work the store does off the request path: access bookkeeping and the TTL sweep.

Reads never write: they note what they returned in an :class:`AccessLog`, and a background
writer (a thread for the sync store, a task for the async one) applies those notes in
batches, locking rows in key order with ``SKIP LOCKED``. Both background jobs catch every
error, log it, back off and carry on; :class:`Liveness` is what ``health`` reports of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from .._ops import Op as DbOp
from .._ops import Query
from ..tenancy import SET_TENANT_SQL
from .sql import ACCESS_FLUSH, ASYNC_COMMIT, EXISTING

__all__ = ["AccessLog", "Liveness", "aattempt", "access_flush_op", "attempt"]

log = logging.getLogger("langgraph_pgstore.memory")
T = TypeVar("T")

#: Seconds a background writer stays alive with nothing to do (it restarts on demand).
IDLE_EXIT = 2.0
#: Seconds between two flushes: reads of the same item in between cost one row update.
FLUSH_INTERVAL = 0.5
#: Most reads remembered while the database can't be written; beyond, new ones are dropped.
MAX_PENDING = 100_000


@dataclass
class Liveness:
    """State of one background job, as health reports it."""

    name: str
    running: bool = False
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    errors: int = 0
    base_delay: float = 0.5
    max_delay: float = 60.0

    def ok(self) -> None:
        self.last_success = datetime.now(UTC)
        self.consecutive_failures = 0

    def failed(self, exc: BaseException) -> float:
        """Record a failure and log it; returns the seconds to wait before trying again."""
        self.errors += 1
        self.consecutive_failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        self.last_error_at = datetime.now(UTC)
        delay = min(self.base_delay * 2.0 ** (self.consecutive_failures - 1), self.max_delay)
        log.warning("memory store %s failed (%s); retrying in %.1fs", self.name, exc, delay)
        return delay

    def outcome(self, result: object, every: float) -> float:
        """Record how a job's run went (its result, or the exception it raised); the seconds
        until the next run: ``every``, or sooner, with backoff, after a failure."""
        if isinstance(result, Exception):
            return min(self.failed(result), every)
        self.ok()
        return every

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "healthy": self.consecutive_failures == 0,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "consecutive_failures": self.consecutive_failures,
            "errors": self.errors,
        }


def attempt(job: Callable[[], T]) -> T | Exception:
    """Run a background job: its result, or its error (logged and retried; the job never
    dies of it)."""
    try:
        return job()
    except Exception as exc:
        return exc


async def aattempt(job: Callable[[], Awaitable[T]]) -> T | Exception:
    """:func:`attempt` for a coroutine function."""
    try:
        return await job()
    except Exception as exc:
        return exc


@dataclass(slots=True)
class _Note:
    count: int
    seen_at: datetime
    refresh: bool


Key = tuple[str | None, str, str]  # (tenant, prefix, key)


@dataclass
class AccessLog:
    """Reads waiting to be written: per item, how often, when last, whether to refresh TTL.

    Thread-safe. ``wake`` is called when a new item is noted, so the store's driver can
    start (or wake) its writer.
    """

    wake: Callable[[], None] = lambda: None
    dropped: int = 0
    liveness: Liveness = field(default_factory=lambda: Liveness("access writer"))
    _notes: dict[Key, _Note] = field(default_factory=dict)
    _inflight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        rows: Iterable[Mapping[str, Any]],
        tenant: str | None,
        *,
        count: bool,
        refresh: bool,
    ) -> None:
        """Note ``rows`` as read for ``tenant`` (their update must run as that tenant: row
        level security); nothing at all when neither counting nor refreshing."""
        now = datetime.now(UTC)
        added = False
        with self._lock:
            for row in rows:
                renew = refresh and row.get("ttl_minutes") is not None
                if not (count or renew):
                    continue
                key = (tenant, row["prefix"], row["key"])
                note = self._notes.get(key)
                if note is None:
                    if len(self._notes) >= MAX_PENDING:
                        self.dropped += 1
                        continue
                    self._notes[key] = _Note(int(count), now, renew)
                    added = True
                else:
                    note.count += int(count)
                    note.seen_at = now
                    note.refresh = note.refresh or renew
        if added:
            self.wake()

    @property
    def pending(self) -> int:
        """Notes not written yet (including those being written now)."""
        return len(self._notes) + self._inflight

    def take(self) -> dict[Key, _Note]:
        with self._lock:
            taken, self._notes = self._notes, {}
            self._inflight += len(taken)
        return taken

    def settle(self, taken: dict[Key, _Note], kept: set[Key] | None) -> None:
        """After a flush: put back the notes in ``kept`` (rows another transaction held;
        ``None``: the flush failed, all of them). Notes of deleted rows are dropped."""
        back = taken if kept is None else {k: n for k, n in taken.items() if k in kept}
        with self._lock:
            self._inflight -= len(taken)
            for key, note in back.items():
                mine = self._notes.get(key)
                if mine is None:
                    self._notes[key] = note
                else:
                    mine.count += note.count
                    mine.refresh = mine.refresh or note.refresh
                    mine.seen_at = max(mine.seen_at, note.seen_at)

    def after_flush(self, taken: dict[Key, _Note], result: set[Key] | Exception) -> float:
        """Settle a background flush (its notes to retry, or the error that kept them all);
        the pause before the next flush."""
        self.settle(taken, None if isinstance(result, Exception) else result)
        return self.liveness.outcome(result, FLUSH_INTERVAL)

    def abandon(self, exc: BaseException) -> None:
        """The store closes and the notes can't be written: drop them, loudly."""
        with self._lock:
            n, self._notes = len(self._notes), {}
            self.dropped += n
        if n:
            log.warning("memory store closed with %d reads not counted: %s", n, exc)

    def status(self) -> dict[str, Any]:
        return {**self.liveness.as_dict(), "pending": self.pending, "dropped": self.dropped}


def access_flush_op(taken: dict[Key, _Note]) -> DbOp[set[Key]]:
    """Write the notes; returns those to try again (rows another transaction held; the notes
    of rows deleted meanwhile are dropped). Each tenant's notes are written acting for that
    tenant (``pgstore.tenant``, transaction-local): row-level security lets a read's
    bookkeeping touch only rows its reader could see."""
    groups: dict[str | None, list[Key]] = {}
    for key in sorted(taken, key=lambda k: (k[1], k[2])):
        groups.setdefault(key[0], []).append(key)
    yield Query(ASYNC_COMMIT)
    again: set[Key] = set()
    for tenant, keys in groups.items():
        notes = [taken[k] for k in keys]
        yield Query(SET_TENANT_SQL, (tenant or "",))
        rows = yield Query(
            ACCESS_FLUSH,
            (
                [k[1] for k in keys],
                [k[2] for k in keys],
                [n.count for n in notes],
                [n.seen_at for n in notes],
                [n.refresh for n in notes],
            ),
        )
        written = {(r["prefix"], r["key"]) for r in rows}
        left = [k for k in keys if (k[1], k[2]) not in written]
        if left:
            rows = yield Query(EXISTING, ([k[1] for k in left], [k[2] for k in left]))
            held = {(r["prefix"], r["key"]) for r in rows}
            again |= {k for k in left if (k[1], k[2]) in held}
    return again
