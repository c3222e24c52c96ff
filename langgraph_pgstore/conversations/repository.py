"""``Conversations`` (sync) and ``AsyncConversations``: one-line wrappers over :mod:`.ops`.

    db.conversations.list_sessions("alice", status="active")
    db.conversations.list_messages(session.id, last=True, limit=50)
    await adb.conversations.alist_messages(session.id)          # async: LangGraph's a* names

Graphs compiled with ``db.checkpointer`` fill sessions and messages by themselves (see
:mod:`.mirror` for the exact semantics); these methods read, curate and delete. Everything
but driving an operation (the SQL, validation, paging) lives in :mod:`.ops`, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, Unpack

from .. import ownership, tenancy
from .._ops import AConn, Conn, arun, run
from ..errors import InvalidInput, PermissionDenied
from ..paging import Page
from . import models as m
from . import ops
from .ops import (
    ID,
    Embedder,
    MessageFields,
    MessageQuery,
    SearchScope,
    SessionFields,
    SessionQuery,
    UserAttributes,
    UserRef,
)
from .recorder import MessageRecorder

__all__ = ["AsyncConversations", "Conversations", "EmbedderStatus"]

log = logging.getLogger("langgraph_pgstore.conversations")

C = TypeVar("C", Conn, AConn)


@dataclass
class EmbedderStatus:
    """What ``health()`` reports of the background embedder (``conversations.embedder``)."""

    enabled: bool = False
    running: bool = False
    healthy: bool = True
    embedded: int = 0
    """Messages embedded by this process."""
    errors: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None


#: Backoff of the background embedder after a failure: doubling from BASE to MAX seconds.
BACKOFF_BASE = 0.5
BACKOFF_MAX = 60.0


class _Base(Generic[C]):
    """What both twins share: the connection or pool, the recorder link, the embedder and
    its status (no I/O)."""

    def __init__(
        self,
        conn: C,
        *,
        recorder: MessageRecorder | None = None,
        embedder: Embedder | None = None,
        batch_size: int = 64,
    ) -> None:
        self.conn: C = conn
        self._start()
        self.recorder = recorder
        self.batch_size = batch_size
        self._status = EmbedderStatus()
        self._error: BaseException | None = None
        #: Tenant -> commits noted: whom the background embedder acts for (see ``_noted``).
        self._pending: dict[str | None, int] = {}
        self._pending_lock = threading.Lock()
        self._embedder_fn: Embedder | None = None
        self.embedder = embedder

    def _start(self) -> None:
        """Set up what the background embedder needs (a thread's events, a task's)."""
        raise NotImplementedError

    def _kick(self) -> None:
        raise NotImplementedError

    def _again(self) -> None:
        """Ask the background embedder for another pass."""
        raise NotImplementedError

    def _on_commit(self) -> None:
        """After a mirrored write commits (in the writer's context): note the tenant it acted
        for, then wake the background embedder, which acts for each noted tenant in turn."""
        try:
            tenant = tenancy.tenant_for(self.conn)
        except PermissionDenied:  # a role that bypasses RLS sees every row unscoped
            tenant = None
        with self._pending_lock:
            self._pending[tenant] = self._pending.get(tenant, 0) + 1
        self._kick()

    def _noted(self) -> dict[str | None, int]:
        """The tenants whose commits await embedding, with their note counts."""
        with self._pending_lock:
            return dict(self._pending)

    def _passed(self, seen: dict[str | None, int], n: int, more: bool) -> int:
        """After a pass over ``seen``: another if a batch was full, else forget the tenants
        noted no more since (a commit during the pass keeps its tenant for the next)."""
        if more:
            self._again()
        else:
            with self._pending_lock:
                for tenant, count in seen.items():
                    if self._pending.get(tenant) == count:
                        del self._pending[tenant]
        return n

    @property
    def embedder(self) -> Embedder | None:
        """Texts -> vectors; setting one starts background embedding after each commit."""
        return self._embedder_fn

    @embedder.setter
    def embedder(self, fn: Embedder | None) -> None:
        self._embedder_fn = fn
        self._status.enabled = fn is not None
        if self.recorder is not None:
            self.recorder.on_commit = self._on_commit if fn is not None else None

    def embedder_status(self) -> EmbedderStatus:
        """Liveness of the background embedder (part of ``db.health()``)."""
        return EmbedderStatus(**vars(self._status))

    def _forget(self) -> None:
        if self.recorder is not None:
            self.recorder.forget()

    def _embedder(self) -> Embedder:
        if self._embedder_fn is None:
            raise InvalidInput("no embedder configured: set conversations.embedder first")
        return self._embedder_fn

    def _vector(self, query: str | Sequence[float]) -> Sequence[float]:
        return self._embedder()([query])[0] if isinstance(query, str) else query

    def _owner(self, conn: Conn | AConn, user: UserRef | None) -> str | None:
        """Owner of a session created now: the tenant, else ``user``, else the run's user."""
        named = ops.owner_key(user) if user is not None else tenancy.run_user()
        return tenancy.resolve_owner(conn, named)[1]

    def _succeeded(self, n: int) -> None:
        self._error = None  # caught up: an earlier failure is over
        self._status.embedded += n
        self._status.consecutive_failures = 0
        self._status.healthy = True

    def _failed(self, exc: Exception) -> float:
        """Record a background failure (kept for ``flush`` to re-raise), log it, and return
        the seconds to wait before trying again."""
        self._error = exc
        status = self._status
        status.errors += 1
        status.consecutive_failures += 1
        status.healthy = False
        status.last_error = f"{type(exc).__name__}: {exc}"
        status.last_error_at = datetime.now(UTC)
        delay = min(BACKOFF_BASE * 2.0 ** (status.consecutive_failures - 1), BACKOFF_MAX)
        log.warning("conversations embedder failed (%s); retrying in %.1fs", exc, delay)
        return delay

    def _raise_kept(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err


class Conversations(_Base[Conn]):
    """Users, sessions, messages and chain analyses on a sync pool or connection.

    ``embedder`` (texts -> vectors; a LangChain ``Embeddings.embed_documents`` fits) turns on
    message embeddings: a background thread embeds new messages in batches after each
    checkpoint commit, surviving errors (logged, retried with backoff, reported by
    ``embedder_status()`` and ``db.health()``); ``flush()`` waits for it.
    """

    def _start(self) -> None:
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None

    # users: named by external id (the identity); internal ids only through *_by_id
    def get_user(self, external_id: str) -> m.User:
        return run(self.conn, ops.get_user(external_id), transaction=False)

    def get_user_by_id(self, user_id: ID) -> m.User:
        return run(self.conn, ops.get_user_by_id(user_id), transaction=False)

    def find_user(self, external_id: str) -> m.User | None:
        return run(self.conn, ops.find_user(external_id), transaction=False)

    def get_or_create_user(
        self, external_id: str, **attributes: Unpack[UserAttributes]
    ) -> tuple[m.User, bool]:
        """The user of an external id, created on first sight (attributes set on creation)."""
        return run(self.conn, ops.resolve_user(external_id, **attributes))

    def update_user(self, external_id: str, **attributes: Unpack[UserAttributes]) -> m.User:
        return run(self.conn, ops.update_user(external_id, **attributes))

    def update_user_by_id(self, user_id: ID, **attributes: Unpack[UserAttributes]) -> m.User:
        return run(self.conn, ops.update_user_by_id(user_id, **attributes))

    def upsert_users(self, users: Iterable[Mapping[str, Any]]) -> list[m.User]:
        return run(self.conn, ops.upsert_users(list(users)))

    def list_users(self, limit: int = 100, offset: int = 0) -> list[m.User]:
        return run(self.conn, ops.list_users(limit, offset), transaction=False)

    def purge_user(self, user: UserRef) -> dict[str, int]:
        """Delete everything the user owns (admin path, see ``ownership.purge_user``)."""
        counts = run(self.conn, ownership.purge_user(ops.owner_key(user) or ""))
        self._forget()
        return counts

    # sessions
    def create_session(
        self, thread_id: str | None = None, *, user: UserRef | None = None, **fields: Any
    ) -> m.Session:
        owner = self._owner(self.conn, user)
        return run(self.conn, ops.create_session(thread_id, owner=owner, **fields))

    def get_session(self, session_id: ID, *, owner_id: str | None = None) -> m.Session:
        return run(self.conn, ops.get_session(session_id, owner_id=owner_id), transaction=False)

    def get_session_by_thread(self, thread_id: str, *, owner_id: str | None = None) -> m.Session:
        op = ops.get_session_by_thread(thread_id, owner_id=owner_id)
        return run(self.conn, op, transaction=False)

    def list_sessions(
        self, user: UserRef | None = None, **query: Unpack[SessionQuery]
    ) -> Page[m.Session]:
        return run(self.conn, ops.list_sessions(user, **query), transaction=False)

    def update_session(self, session_id: ID, **fields: Unpack[SessionFields]) -> m.Session:
        return run(self.conn, ops.update_session(session_id, **fields))

    def rename_session(self, session_id: ID, title: str) -> m.Session:
        return run(self.conn, ops.update_session(session_id, title=title))

    def archive_session(self, session_id: ID) -> m.Session:
        return run(self.conn, ops.update_session(session_id, status="archived"))

    def delete_session(self, session_id: ID) -> dict[str, int]:
        counts = run(self.conn, ops.delete_session(session_id))
        self._forget()
        return counts

    def session_stats(self, session_id: ID, *, owner_id: str | None = None) -> m.SessionStats:
        return run(self.conn, ops.session_stats(session_id, owner_id=owner_id))

    # messages
    def add_message(
        self, session_id: ID, role: str, content: str, **fields: Unpack[MessageFields]
    ) -> m.Message:
        return run(self.conn, ops.add_message(session_id, role, content, **fields))

    def delete_message(self, session_id: ID, message_id: str) -> m.Message:
        return run(self.conn, ops.delete_message(session_id, message_id))

    def list_messages(self, session_id: ID, **query: Unpack[MessageQuery]) -> Page[m.Message]:
        return run(self.conn, ops.list_messages(session_id, **query), transaction=False)

    def count_messages(
        self, session_id: ID, *, include_removed: bool = False, owner_id: str | None = None
    ) -> int:
        op = ops.count_messages(session_id, include_removed=include_removed, owner_id=owner_id)
        return run(self.conn, op, transaction=False)

    def search_messages(self, query: str, **scope: Unpack[SearchScope]) -> list[m.Message]:
        return run(self.conn, ops.search_text(query, **scope), transaction=False)

    def search_similar(
        self, query: str | Sequence[float], **scope: Unpack[SearchScope]
    ) -> list[m.MessageHit]:
        """Nearest messages to a text (embedded with ``embedder``) or a vector."""
        return run(self.conn, ops.search_similar(self._vector(query), **scope))

    def embed_pending(self, *, max_batches: int | None = None) -> int:
        """Embed messages that have none yet, batch by batch; returns how many."""
        total, batches = 0, 0
        while max_batches is None or batches < max_batches:
            n = run(self.conn, ops.embed_pending(self._embedder(), batch_size=self.batch_size))
            total, batches = total + n, batches + 1
            if n < self.batch_size:
                break
        return total

    def flush(self, timeout: float | None = 60.0) -> None:
        """Wait until the background embedder has caught up, then embed what is left here
        (re-raises the background's last error, once)."""
        self._idle.wait(timeout)
        self._raise_kept()
        self._succeeded(self.embed_pending())

    # analysis
    def upsert_analysis(
        self, session_id: ID, analysis: m.ChainAnalysis | Mapping[str, Any]
    ) -> m.StoredChainAnalysis:
        return run(self.conn, ops.upsert_analysis(session_id, analysis))

    def save_analysis_for_thread(
        self, thread_id: str, analysis: m.ChainAnalysis | Mapping[str, Any]
    ) -> m.StoredChainAnalysis:
        """For a graph node: pass ``config["configurable"]["thread_id"]`` and the analysis."""
        return run(self.conn, ops.save_analysis_for_thread(thread_id, analysis))

    def get_analysis(
        self, session_id: ID, *, owner_id: str | None = None
    ) -> m.StoredChainAnalysis | None:
        return run(self.conn, ops.get_analysis(session_id, owner_id=owner_id), transaction=False)

    # background embedding: one daemon thread, woken after each commit
    def _embed_noted(self) -> int:
        seen = self._noted()
        op = ops.embed_for_tenants(self._embedder(), list(seen), batch_size=self.batch_size)
        return self._passed(seen, *run(self.conn, op))

    def _again(self) -> None:
        self._wake.set()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="pgstore-embedder", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        self._status.running = True
        try:
            while self._wake.wait(5.0):
                self._wake.clear()
                while True:  # until caught up, waiting out failures
                    try:
                        self._succeeded(self._embed_noted())
                        break
                    except Exception as exc:  # the graph must not fail; health shows it
                        delay = self._failed(exc)
                        self._idle.set()  # flush() re-raises it rather than wait
                        time.sleep(delay)
                if not self._wake.is_set():
                    self._idle.set()
        finally:
            self._status.running = False
            self._idle.set()


class AsyncConversations(_Base[AConn]):
    """Async twin of :class:`Conversations`: the same operations as ``a``-prefixed
    coroutines (LangGraph's convention); background embedding runs as an asyncio task."""

    def _start(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self._settled = asyncio.Event()  # caught up, or failed (aflush re-raises)
        self._settled.set()

    async def aget_user(self, external_id: str) -> m.User:
        return await arun(self.conn, ops.get_user(external_id), transaction=False)

    async def aget_user_by_id(self, user_id: ID) -> m.User:
        return await arun(self.conn, ops.get_user_by_id(user_id), transaction=False)

    async def afind_user(self, external_id: str) -> m.User | None:
        return await arun(self.conn, ops.find_user(external_id), transaction=False)

    async def aget_or_create_user(
        self, external_id: str, **attributes: Unpack[UserAttributes]
    ) -> tuple[m.User, bool]:
        return await arun(self.conn, ops.resolve_user(external_id, **attributes))

    async def aupdate_user(self, external_id: str, **attributes: Unpack[UserAttributes]) -> m.User:
        return await arun(self.conn, ops.update_user(external_id, **attributes))

    async def aupdate_user_by_id(self, user_id: ID, **attributes: Unpack[UserAttributes]) -> m.User:
        return await arun(self.conn, ops.update_user_by_id(user_id, **attributes))

    async def aupsert_users(self, users: Iterable[Mapping[str, Any]]) -> list[m.User]:
        return await arun(self.conn, ops.upsert_users(list(users)))

    async def alist_users(self, limit: int = 100, offset: int = 0) -> list[m.User]:
        return await arun(self.conn, ops.list_users(limit, offset), transaction=False)

    async def apurge_user(self, user: UserRef) -> dict[str, int]:
        counts = await arun(self.conn, ownership.purge_user(ops.owner_key(user) or ""))
        self._forget()
        return counts

    async def acreate_session(
        self, thread_id: str | None = None, *, user: UserRef | None = None, **fields: Any
    ) -> m.Session:
        owner = self._owner(self.conn, user)
        return await arun(self.conn, ops.create_session(thread_id, owner=owner, **fields))

    async def aget_session(self, session_id: ID, *, owner_id: str | None = None) -> m.Session:
        op = ops.get_session(session_id, owner_id=owner_id)
        return await arun(self.conn, op, transaction=False)

    async def aget_session_by_thread(
        self, thread_id: str, *, owner_id: str | None = None
    ) -> m.Session:
        op = ops.get_session_by_thread(thread_id, owner_id=owner_id)
        return await arun(self.conn, op, transaction=False)

    async def alist_sessions(
        self, user: UserRef | None = None, **query: Unpack[SessionQuery]
    ) -> Page[m.Session]:
        return await arun(self.conn, ops.list_sessions(user, **query), transaction=False)

    async def aupdate_session(self, session_id: ID, **fields: Unpack[SessionFields]) -> m.Session:
        return await arun(self.conn, ops.update_session(session_id, **fields))

    async def arename_session(self, session_id: ID, title: str) -> m.Session:
        return await arun(self.conn, ops.update_session(session_id, title=title))

    async def aarchive_session(self, session_id: ID) -> m.Session:
        return await arun(self.conn, ops.update_session(session_id, status="archived"))

    async def adelete_session(self, session_id: ID) -> dict[str, int]:
        counts = await arun(self.conn, ops.delete_session(session_id))
        self._forget()
        return counts

    async def asession_stats(
        self, session_id: ID, *, owner_id: str | None = None
    ) -> m.SessionStats:
        return await arun(self.conn, ops.session_stats(session_id, owner_id=owner_id))

    async def aadd_message(
        self, session_id: ID, role: str, content: str, **fields: Unpack[MessageFields]
    ) -> m.Message:
        return await arun(self.conn, ops.add_message(session_id, role, content, **fields))

    async def adelete_message(self, session_id: ID, message_id: str) -> m.Message:
        return await arun(self.conn, ops.delete_message(session_id, message_id))

    async def alist_messages(
        self, session_id: ID, **query: Unpack[MessageQuery]
    ) -> Page[m.Message]:
        return await arun(self.conn, ops.list_messages(session_id, **query), transaction=False)

    async def acount_messages(
        self, session_id: ID, *, include_removed: bool = False, owner_id: str | None = None
    ) -> int:
        op = ops.count_messages(session_id, include_removed=include_removed, owner_id=owner_id)
        return await arun(self.conn, op, transaction=False)

    async def asearch_messages(self, query: str, **scope: Unpack[SearchScope]) -> list[m.Message]:
        return await arun(self.conn, ops.search_text(query, **scope), transaction=False)

    async def asearch_similar(
        self, query: str | Sequence[float], **scope: Unpack[SearchScope]
    ) -> list[m.MessageHit]:
        vector = await asyncio.to_thread(self._vector, query)
        return await arun(self.conn, ops.search_similar(vector, **scope))

    async def aembed_pending(self, *, max_batches: int | None = None) -> int:
        total, batches = 0, 0
        while max_batches is None or batches < max_batches:
            op = ops.embed_pending(self._embedder(), batch_size=self.batch_size)
            n = await arun(self.conn, op)
            total, batches = total + n, batches + 1
            if n < self.batch_size:
                break
        return total

    async def aflush(self, timeout: float | None = 60.0) -> None:
        """Wait (``timeout`` s at most) until the background embedder has caught up or
        failed, then embed what is left here (re-raises the background's last error, once)."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), timeout)
        self._raise_kept()
        self._succeeded(await self.aembed_pending())

    async def aupsert_analysis(
        self, session_id: ID, analysis: m.ChainAnalysis | Mapping[str, Any]
    ) -> m.StoredChainAnalysis:
        return await arun(self.conn, ops.upsert_analysis(session_id, analysis))

    async def asave_analysis_for_thread(
        self, thread_id: str, analysis: m.ChainAnalysis | Mapping[str, Any]
    ) -> m.StoredChainAnalysis:
        return await arun(self.conn, ops.save_analysis_for_thread(thread_id, analysis))

    async def aget_analysis(
        self, session_id: ID, *, owner_id: str | None = None
    ) -> m.StoredChainAnalysis | None:
        op = ops.get_analysis(session_id, owner_id=owner_id)
        return await arun(self.conn, op, transaction=False)

    async def _aembed_noted(self) -> int:
        seen = self._noted()
        op = ops.embed_for_tenants(self._embedder(), list(seen), batch_size=self.batch_size)
        return self._passed(seen, *(await arun(self.conn, op)))

    def _again(self) -> None:
        self._dirty = True

    def _kick(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            try:
                # A fresh context: the task serves every later commit, so it must not keep
                # the tenant (or run) of the one that started it, as the sync thread doesn't.
                loop = asyncio.get_running_loop()
                self._task = loop.create_task(self._loop(), context=contextvars.Context())
            except RuntimeError:  # committed from a thread without a loop: aflush catches up
                return

    async def _loop(self) -> None:
        self._status.running = True
        try:
            while self._dirty:
                self._dirty = False
                self._settled.clear()
                while True:  # until caught up, waiting out failures
                    try:
                        self._succeeded(await self._aembed_noted())
                        break
                    except Exception as exc:  # the graph must not fail; health shows it
                        delay = self._failed(exc)
                        self._settled.set()
                        await asyncio.sleep(delay)
        finally:
            self._status.running = False
            self._settled.set()
