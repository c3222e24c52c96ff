"""What the checkpointers call to mirror a checkpoint into sessions and messages.

For each root-graph checkpoint, :meth:`MessageRecorder.prepare` returns a :class:`Mirror`:
either statements that return nothing (the checkpointer sends them in the checkpoint's own
pipeline: one round trip, one transaction) or an operation that needs answers (run in the
checkpoint's transaction). The checkpointer calls :meth:`Mirror.committed` after the commit;
so a crash between the two writes is impossible and a retry can't duplicate a message.

The checkpointer resolves the owner of the write (the tenant, else the run's
``config["metadata"]["user_id"]``, see :mod:`..tenancy`) and passes it here: it owns the
thread's session, its users row (created on first sight; ``metadata["user_email"]`` is only an
attribute) and its messages.
"""

from __future__ import annotations

import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig

from .._ops import Op, Query
from .mirror import MessageRow, message_row, messages_of
from .mirroring import ThreadState, append, diff, sync_thread

__all__ = ["MessageRecorder", "Mirror"]

MESSAGES_CHANNEL = "messages"


@dataclass
class Mirror:
    """What one checkpoint write adds: ``queries`` to pipeline with it (when ``op`` is None),
    else ``op`` to run in its transaction; then :meth:`committed`."""

    recorder: MessageRecorder
    thread_id: str
    queries: list[Query]
    op: Op[ThreadState] | None
    state: ThreadState | None
    objs: dict[str, tuple[Any, MessageRow]]
    messages: list[Any]

    def committed(self, result: ThreadState | None = None) -> None:
        """Remember the thread's state (``result``: what ``op`` returned)."""
        state = result if self.op is not None else self.state
        if state is not None:
            state.objs, state.messages = self.objs, self.messages
        self.recorder._remember(self.thread_id, state)


class MessageRecorder:
    """Per-process cache of what is mirrored for recent threads, plus the on/off switch.

    The cache lets a super-step send only the messages that changed, in the checkpoint's
    own round trip. It is an optimisation, never the source of truth: a state is used only
    for the checkpoint that follows the one it mirrored (else the whole list is synced by
    the server), it is put back only after a commit, and a session deleted meanwhile makes
    the write fail with a foreign-key violation (the checkpointer retries, which syncs).
    Two processes writing the same thread *at the same time* are not supported (LangGraph
    does not support that for one thread either); one after the other is fine.
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

    def prepare(
        self,
        config: RunnableConfig,
        checkpoint: Mapping[str, Any],
        metadata: Mapping[str, Any],
        new_versions: Mapping[str, Any],
        owner: str | None = None,
    ) -> Mirror:
        """The mirror writes of one checkpoint written on behalf of ``owner``.

        The thread's cached state is taken out until :meth:`Mirror.committed` puts the new
        one back: a write that fails leaves nothing cached, so the next starts afresh."""
        conf = config.get("configurable") or {}
        thread_id, checkpoint_id = str(conf["thread_id"]), str(checkpoint["id"])
        with self._lock:
            known = self._known.pop(thread_id, None)
        if known is not None and not known.serves(owner, conf.get("checkpoint_id")):
            known = None
        # Unchanged channel: nothing to do if the table shows the parent; else (a fork, say)
        # the checkpoint's list, which carries every channel, decides (none: empty).
        msgs = None
        if self.channel in new_versions or known is None:
            value = checkpoint.get("channel_values", {}).get(self.channel)
            if value is None and self.channel in checkpoint.get("channel_versions", {}):
                # A DeltaChannel between snapshots: the checkpoint doesn't carry the list.
                # Leave the rows; the next snapshot brings them in line.
                return Mirror(self, thread_id, [], None, None, {}, [])
            msgs = messages_of(value) or []
        if known is None:
            rows, objs = self._rows(msgs or [], {})
            meta = {**(config.get("metadata") or {}), **(metadata or {})}
            email = meta.get("user_email") or conf.get("user_email")
            op = sync_thread(
                thread_id,
                checkpoint_id,
                rows,
                owner=owner,
                email=str(email) if email is not None else None,
                has_vector=self.has_vector,
            )
            return Mirror(self, thread_id, [], op, None, objs, msgs or [])
        if msgs is None:
            queries, state = diff(known, checkpoint_id, None)
            return Mirror(self, thread_id, queries, None, state, known.objs, known.messages)
        if (appended := self._append(thread_id, known, checkpoint_id, msgs)) is not None:
            return appended
        rows, objs = self._rows(msgs, known.objs)
        queries, state = diff(known, checkpoint_id, rows)
        return Mirror(self, thread_id, queries, None, state, objs, msgs)

    def _append(
        self, thread_id: str, known: ThreadState, checkpoint_id: str, msgs: list[Any]
    ) -> Mirror | None:
        """The usual super-step, in time proportional to what it added: the list is the
        mirrored one (the very same objects: ``add_messages`` copies the list, never its
        messages) plus new messages. None for anything else."""
        prev = known.messages
        if len(msgs) < len(prev) or not all(map(operator.is_, prev, msgs)):
            return None
        rows, objs = self._rows(msgs[len(prev) :], {})
        done = append(known, checkpoint_id, rows)
        if done is None:
            return None
        queries, state = done
        state.objs.update(objs)
        return Mirror(self, thread_id, queries, None, state, state.objs, msgs)

    @staticmethod
    def _rows(
        msgs: list[Any], cache: dict[str, tuple[Any, MessageRow]]
    ) -> tuple[list[MessageRow], dict[str, tuple[Any, MessageRow]]]:
        """The rows of a message list, converting only messages not seen as the same object
        last time (``add_messages`` replaces a message, never mutates it)."""
        rows, objs = [], {}
        for m in msgs:
            hit = cache.get(m.id) if m.id is not None else None
            row = hit[1] if hit is not None and hit[0] is m else message_row(m)
            rows.append(row)
            if m.id is not None:
                objs[m.id] = (m, row)
        return rows, objs

    def _remember(self, thread_id: str, state: ThreadState | None) -> None:
        with self._lock:
            if state is not None:
                self.has_vector = state.has_vector
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
