"""``Conversations`` (sync) and ``AsyncConversations``: one-line wrappers over :mod:`.ops`.

    db.conversations.list_sessions(user="alice", status="active")
    db.conversations.list_messages(session.id, last=True, limit=50)

Graphs compiled with ``db.checkpointer`` fill sessions and messages by themselves (see
:mod:`.mirror` for the exact semantics); these methods read, curate and delete.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from .. import ownership, tenancy
from .._ops import AConn, Conn, arun, run
from ..errors import InvalidInput
from . import ops
from .models import (
    ChainAnalysis,
    Message,
    MessageHit,
    Page,
    Session,
    SessionStats,
    StoredChainAnalysis,
    User,
)
from .ops import Embedder
from .recorder import MessageRecorder

__all__ = ["AsyncConversations", "Conversations"]

UserRef = str | User
"""A user: its external id, or a ``User`` row (internal UUIDs only via ``get_user_by_id``)."""
ID = UUID | str


class _Base:
    """What both twins share: the recorder link, the embedder and its helpers (no I/O)."""

    recorder: MessageRecorder | None
    _embedder_fn: Embedder | None = None

    def _kick(self) -> None:
        raise NotImplementedError

    @property
    def embedder(self) -> Embedder | None:
        """Texts -> vectors; setting one starts background embedding after each commit."""
        return self._embedder_fn

    @embedder.setter
    def embedder(self, fn: Embedder | None) -> None:
        self._embedder_fn = fn
        if self.recorder is not None:
            self.recorder.on_commit = self._kick if fn is not None else None

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


class Conversations(_Base):
    """Users, sessions, messages and chain analyses on a sync pool or connection.

    ``embedder`` (texts -> vectors; a LangChain ``Embeddings.embed_documents`` fits) turns on
    message embeddings: a background thread embeds new messages in batches after each
    checkpoint commit; ``flush()`` waits for it.
    """

    def __init__(
        self,
        conn: Conn,
        *,
        recorder: MessageRecorder | None = None,
        embedder: Embedder | None = None,
        batch_size: int = 64,
    ) -> None:
        self.conn = conn
        self.recorder = recorder
        self.batch_size = batch_size
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.embedder = embedder

    # users: named by external id (the identity); internal ids only through get_user_by_id
    def get_user(self, external_id: str) -> User:
        return run(self.conn, ops.get_user(external_id), transaction=False)

    def get_user_by_id(self, user_id: ID) -> User:
        return run(self.conn, ops.get_user_by_id(user_id), transaction=False)

    def find_user(self, external_id: str) -> User | None:
        return run(self.conn, ops.find_user(external_id), transaction=False)

    def get_or_create_user(self, external_id: str, **attributes: Any) -> tuple[User, bool]:
        """The user of an external id, created on first sight (email, name, metadata are
        attributes set on creation)."""
        return run(self.conn, ops.resolve_user(external_id, **attributes))

    def upsert_users(self, users: Iterable[Mapping[str, Any]]) -> list[User]:
        return run(self.conn, ops.upsert_users(list(users)))

    def list_users(self, limit: int = 100, offset: int = 0) -> list[User]:
        return run(self.conn, ops.list_users(limit, offset))

    def purge_user(self, user: UserRef) -> dict[str, int]:
        """Delete everything the user owns (admin path, see ``ownership.purge_user``)."""
        counts = run(self.conn, ownership.purge_user(ops.owner_key(user) or ""))
        self._forget()
        return counts

    # sessions
    def create_session(
        self, thread_id: str | None = None, *, user: UserRef | None = None, **fields: Any
    ) -> Session:
        owner = self._owner(self.conn, user)
        return run(self.conn, ops.create_session(thread_id, owner=owner, **fields))

    def get_session(self, session_id: ID) -> Session:
        return run(self.conn, ops.get_session(session_id), transaction=False)

    def get_session_by_thread(self, thread_id: str) -> Session:
        return run(self.conn, ops.get_session_by_thread(thread_id), transaction=False)

    def list_sessions(self, user: UserRef | None = None, **kw: Any) -> Page[Session]:
        return run(self.conn, ops.list_sessions(user, **kw), transaction=False)

    def update_session(self, session_id: ID, **fields: Any) -> Session:
        return run(self.conn, ops.update_session(session_id, **fields))

    def rename_session(self, session_id: ID, title: str) -> Session:
        return run(self.conn, ops.update_session(session_id, title=title))

    def archive_session(self, session_id: ID) -> Session:
        return run(self.conn, ops.update_session(session_id, status="archived"))

    def delete_session(self, session_id: ID) -> dict[str, int]:
        counts = run(self.conn, ops.delete_session(session_id))
        self._forget()
        return counts

    def session_stats(self, session_id: ID) -> SessionStats:
        return run(self.conn, ops.session_stats(session_id))

    # messages
    def add_message(self, session_id: ID, role: str, content: str, **kw: Any) -> Message:
        return run(self.conn, ops.add_message(session_id, role, content, **kw))

    def list_messages(self, session_id: ID, **kw: Any) -> list[Message]:
        return run(self.conn, ops.list_messages(session_id, **kw), transaction=False)

    def count_messages(self, session_id: ID, *, include_removed: bool = False) -> int:
        return run(
            self.conn,
            ops.count_messages(session_id, include_removed=include_removed),
            transaction=False,
        )

    def search_messages(self, query: str, **kw: Any) -> list[Message]:
        return run(self.conn, ops.search_text(query, **kw), transaction=False)

    def search_similar(self, query: str | Sequence[float], **kw: Any) -> list[MessageHit]:
        """Nearest messages to a text (embedded with ``embedder``) or a vector."""
        return run(self.conn, ops.search_similar(self._vector(query), **kw))

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
        """Wait until the background embedder has caught up (re-raises its error)."""
        self._idle.wait(timeout)
        self.embed_pending()
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    # analysis
    def upsert_analysis(
        self, session_id: ID, analysis: ChainAnalysis | Mapping[str, Any]
    ) -> StoredChainAnalysis:
        return run(self.conn, ops.upsert_analysis(session_id, analysis))

    def save_analysis_for_thread(
        self, thread_id: str, analysis: ChainAnalysis | Mapping[str, Any]
    ) -> StoredChainAnalysis:
        """For a graph node: pass ``config["configurable"]["thread_id"]`` and the analysis."""
        session = self.get_session_by_thread(thread_id)
        return self.upsert_analysis(session.id, analysis)

    def get_analysis(self, session_id: ID) -> StoredChainAnalysis | None:
        return run(self.conn, ops.get_analysis(session_id), transaction=False)

    # background embedding
    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="pgstore-embedder", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while self._wake.wait(5.0):
            self._wake.clear()
            try:
                self.embed_pending()
            except Exception as exc:  # kept for flush() to re-raise; the graph must not fail
                self._error = exc
            if not self._wake.is_set():
                self._idle.set()
        self._idle.set()


class AsyncConversations(_Base):
    """Async twin of :class:`Conversations` (background embedding runs as an asyncio task)."""

    def __init__(
        self,
        conn: AConn,
        *,
        recorder: MessageRecorder | None = None,
        embedder: Embedder | None = None,
        batch_size: int = 64,
    ) -> None:
        self.conn = conn
        self.recorder = recorder
        self.batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self._dirty = False
        self._error: BaseException | None = None
        self.embedder = embedder

    async def get_user(self, external_id: str) -> User:
        return await arun(self.conn, ops.get_user(external_id), transaction=False)

    async def get_user_by_id(self, user_id: ID) -> User:
        return await arun(self.conn, ops.get_user_by_id(user_id), transaction=False)

    async def find_user(self, external_id: str) -> User | None:
        return await arun(self.conn, ops.find_user(external_id), transaction=False)

    async def get_or_create_user(self, external_id: str, **attributes: Any) -> tuple[User, bool]:
        return await arun(self.conn, ops.resolve_user(external_id, **attributes))

    async def upsert_users(self, users: Iterable[Mapping[str, Any]]) -> list[User]:
        return await arun(self.conn, ops.upsert_users(list(users)))

    async def list_users(self, limit: int = 100, offset: int = 0) -> list[User]:
        return await arun(self.conn, ops.list_users(limit, offset))

    async def purge_user(self, user: UserRef) -> dict[str, int]:
        counts = await arun(self.conn, ownership.purge_user(ops.owner_key(user) or ""))
        self._forget()
        return counts

    async def create_session(
        self, thread_id: str | None = None, *, user: UserRef | None = None, **fields: Any
    ) -> Session:
        owner = self._owner(self.conn, user)
        return await arun(self.conn, ops.create_session(thread_id, owner=owner, **fields))

    async def get_session(self, session_id: ID) -> Session:
        return await arun(self.conn, ops.get_session(session_id), transaction=False)

    async def get_session_by_thread(self, thread_id: str) -> Session:
        return await arun(self.conn, ops.get_session_by_thread(thread_id), transaction=False)

    async def list_sessions(self, user: UserRef | None = None, **kw: Any) -> Page[Session]:
        return await arun(self.conn, ops.list_sessions(user, **kw), transaction=False)

    async def update_session(self, session_id: ID, **fields: Any) -> Session:
        return await arun(self.conn, ops.update_session(session_id, **fields))

    async def rename_session(self, session_id: ID, title: str) -> Session:
        return await arun(self.conn, ops.update_session(session_id, title=title))

    async def archive_session(self, session_id: ID) -> Session:
        return await arun(self.conn, ops.update_session(session_id, status="archived"))

    async def delete_session(self, session_id: ID) -> dict[str, int]:
        counts = await arun(self.conn, ops.delete_session(session_id))
        self._forget()
        return counts

    async def session_stats(self, session_id: ID) -> SessionStats:
        return await arun(self.conn, ops.session_stats(session_id))

    async def add_message(self, session_id: ID, role: str, content: str, **kw: Any) -> Message:
        return await arun(self.conn, ops.add_message(session_id, role, content, **kw))

    async def list_messages(self, session_id: ID, **kw: Any) -> list[Message]:
        return await arun(self.conn, ops.list_messages(session_id, **kw), transaction=False)

    async def count_messages(self, session_id: ID, *, include_removed: bool = False) -> int:
        return await arun(
            self.conn, ops.count_messages(session_id, include_removed=include_removed)
        )

    async def search_messages(self, query: str, **kw: Any) -> list[Message]:
        return await arun(self.conn, ops.search_text(query, **kw), transaction=False)

    async def search_similar(self, query: str | Sequence[float], **kw: Any) -> list[MessageHit]:
        vector = await asyncio.to_thread(self._vector, query)
        return await arun(self.conn, ops.search_similar(vector, **kw))

    async def embed_pending(self, *, max_batches: int | None = None) -> int:
        total, batches = 0, 0
        while max_batches is None or batches < max_batches:
            n = await arun(
                self.conn, ops.embed_pending(self._embedder(), batch_size=self.batch_size)
            )
            total, batches = total + n, batches + 1
            if n < self.batch_size:
                break
        return total

    async def flush(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)
        await self.embed_pending()
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    async def upsert_analysis(
        self, session_id: ID, analysis: ChainAnalysis | Mapping[str, Any]
    ) -> StoredChainAnalysis:
        return await arun(self.conn, ops.upsert_analysis(session_id, analysis))

    async def save_analysis_for_thread(
        self, thread_id: str, analysis: ChainAnalysis | Mapping[str, Any]
    ) -> StoredChainAnalysis:
        session = await self.get_session_by_thread(thread_id)
        return await self.upsert_analysis(session.id, analysis)

    async def get_analysis(self, session_id: ID) -> StoredChainAnalysis | None:
        return await arun(self.conn, ops.get_analysis(session_id), transaction=False)

    def _kick(self) -> None:
        self._dirty = True
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._loop())
            except RuntimeError:  # committed from a thread without a loop: flush() catches up
                return

    async def _loop(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self.embed_pending()
            except Exception as exc:  # kept for flush() to re-raise; the graph must not fail
                self._error = exc
