"""What the checkpointers call to mirror a checkpoint into sessions and messages.

The checkpointer runs langgraph's own ``put`` and :meth:`MessageRecorder.op` on one
connection inside one transaction, then calls :meth:`MessageRecorder.committed`; so a crash
between the two writes is impossible and a retry can't duplicate a message.

The checkpointer resolves the owner of the write (the tenant, else the run's
``config["metadata"]["user_id"]``, see :mod:`..tenancy`) and passes it here: it owns the
thread's session, its users row (created on first sight; ``metadata["user_email"]`` is only an
attribute) and its messages.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from langchain_core.runnables import RunnableConfig

from .._ops import Op, Query
from .mirror import MessageRow, message_row, messages_of
from .mirroring import ThreadState, mirror_messages
from .ops import HAS_EMBEDDING_SQL

__all__ = ["MessageRecorder"]

MESSAGES_CHANNEL = "messages"


class MessageRecorder:
    """Per-process cache of what is mirrored for recent threads, plus the on/off switch.

    The cache lets a super-step write only the messages that changed. It is only updated
    after a commit, and a session deleted meanwhile is detected (its touch updates no row).
    Two *processes* writing the same thread concurrently are not supported (LangGraph does
    not support that for one thread either).
    """

    def __init__(
        self,
        *,
        enabled: bool = True,
        channel: str = MESSAGES_CHANNEL,
        max_threads: int = 4096,
        has_vector: bool | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.enabled = enabled
        self.channel = channel
        self.has_vector = has_vector
        self.on_commit = on_commit
        self._max = max_threads
        self._known: OrderedDict[str, ThreadState] = OrderedDict()
        self._lock = threading.Lock()

    def wants(self, config: RunnableConfig) -> bool:
        conf = config.get("configurable") or {}
        return self.enabled and not conf.get("checkpoint_ns") and "thread_id" in conf

    def pipelined(self, config: RunnableConfig, owner: str | None = None) -> bool:
        """True when this thread's mirror writes return no rows (so can share one pipeline
        with the checkpoint write: one round trip instead of five)."""
        with self._lock:
            known = self._known.get(str(config["configurable"]["thread_id"]))
        return self.has_vector is not None and known is not None and known.serves(owner)

    def stale(self, config: RunnableConfig, exc: BaseException) -> bool:
        """Whether ``exc`` means the cached session was deleted meanwhile (then forget it,
        and the caller retries once: the checkpoint write is an idempotent upsert)."""
        cause = exc if isinstance(exc, psycopg.errors.ForeignKeyViolation) else exc.__cause__
        if not isinstance(cause, psycopg.errors.ForeignKeyViolation):
            return False
        self.forget([str(config["configurable"]["thread_id"])])
        return True

    def op(
        self,
        config: RunnableConfig,
        checkpoint: Mapping[str, Any],
        metadata: Mapping[str, Any],
        new_versions: Mapping[str, Any],
        owner: str | None = None,
    ) -> Op[ThreadState | None]:
        conf = config.get("configurable") or {}
        thread_id = str(conf["thread_id"])
        with self._lock:
            known = self._known.get(thread_id)
        rows = None
        objs: dict[str, tuple[Any, MessageRow]] = {}
        if self.channel in new_versions:
            msgs = messages_of(checkpoint.get("channel_values", {}).get(self.channel))
            if msgs is not None:
                rows = []
                cache = known.objs if known is not None else {}
                for m in msgs:
                    hit = cache.get(m.id) if m.id is not None else None
                    # Same object as last time: unchanged (add_messages replaces, never mutates).
                    row = hit[1] if hit is not None and hit[0] is m else message_row(m)
                    rows.append(row)
                    if m.id is not None:
                        objs[m.id] = (m, row)
        meta = {**(config.get("metadata") or {}), **(metadata or {})}
        email = meta.get("user_email") or conf.get("user_email")
        if self.has_vector is None:  # a schema fact: safe to keep even if this rolls back
            self.has_vector = bool((yield Query(HAS_EMBEDDING_SQL)))
        state = yield from mirror_messages(
            thread_id,
            str(checkpoint["id"]),
            rows,
            known,
            owner=owner,
            email=str(email) if email is not None else None,
            has_vector=self.has_vector,
        )
        if state is not None and rows is not None:
            state.objs = objs
        elif state is not None and known is not None:
            state.objs = known.objs
        return state

    def committed(self, config: RunnableConfig, state: ThreadState | None) -> None:
        thread_id = str(config["configurable"]["thread_id"])
        with self._lock:
            if state is None:
                self._known.pop(thread_id, None)
            else:
                self._known[thread_id] = state
                self._known.move_to_end(thread_id)
                while len(self._known) > self._max:
                    self._known.popitem(last=False)
        if self.on_commit is not None:
            self.on_commit()

    def forget(self, thread_ids: list[str] | None = None) -> None:
        """Drop cached state (after deleting sessions); None forgets everything."""
        with self._lock:
            if thread_ids is None:
                self._known.clear()
            for t in thread_ids or []:
                self._known.pop(t, None)
