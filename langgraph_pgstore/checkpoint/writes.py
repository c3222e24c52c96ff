"""The write path shared by both checkpointers: one round trip per ``put``/``put_writes``.

``PostgresSaver.put`` runs its statements in a pipeline of their own; the message mirror
then needed a transaction around it and the pool a check query before it: four to six
round trips and two commits per super-step. Here a write is built as statements first
(:func:`put_write`, :func:`writes_write`) and sent by the saver in one pipeline, which the
server runs as one implicit transaction ending at the pipeline's sync: one round trip,
atomic, nothing read back. Only when the mirror has to read (a thread this process has not
mirrored yet, a fork) does the write run as an operation in an explicit transaction.

The rows are exactly the ones PostgresSaver writes: its own statements
(``UPSERT_CHECKPOINTS_SQL`` and friends) and serialisation (``_dump_blobs``,
``_dump_writes``), and its split of channel values between the checkpoint (primitives,
inline) and the blobs table; ``tests/test_checkpointer.py`` compares the rows of both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import _DeltaSnapshot
from psycopg.types.json import Jsonb

from .._ops import Op, Query
from ..conversations.mirroring import ThreadState
from ..conversations.recorder import MessageRecorder, Mirror
from .base import Scope, scope_statement, write_scope

__all__ = ["Key", "Write", "put_write", "writes_write"]

Saver = PostgresSaver | AsyncPostgresSaver

#: A checkpoint as writes meet on it: (thread id, namespace, checkpoint id, scope).
Key = tuple[str, str, str, Scope]


@dataclass
class Write:
    """One write: :attr:`queries` for one pipeline (none returns rows), unless the message
    mirror needs answers: then :attr:`op` runs the same statements and its own in one
    transaction. :meth:`committed` afterwards."""

    queries: list[Query]
    mirror: Mirror | None = None
    #: Where a task's writes and the next checkpoint meet (see :mod:`.coalesce`): for
    #: writes, their checkpoint; for a checkpoint, its parent (None: it has none).
    key: Key | None = None

    @property
    def op(self) -> Op[ThreadState] | None:
        if self.mirror is None or self.mirror.op is None:
            return None
        return _then(self.queries, self.mirror.op)

    def committed(self, result: ThreadState | None) -> None:
        """Tell the mirror (``result``: what :attr:`op` returned, if it ran)."""
        if self.mirror is not None:
            self.mirror.committed(result)


def _then(queries: list[Query], op: Op[ThreadState]) -> Op[ThreadState]:
    for query in queries:  # noqa: UP028 (``yield from`` a list can't take the sent rows)
        yield query
    return (yield from op)


def _scoped(saver: Saver, config: RunnableConfig) -> tuple[list[Query], Scope]:
    """The statement that makes the write act for its tenant (or owner), and the scope."""
    scope = write_scope(saver.conn, config)
    statement = scope_statement(scope)
    return ([Query(*statement)] if statement is not None else []), scope


def put_write(
    saver: Saver,
    recorder: MessageRecorder | None,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> tuple[Write, RunnableConfig]:
    """``PostgresSaver.put``'s rows (primitives inline in the checkpoint, other channel
    values as blobs of their new versions), then the message mirror's statements; and the
    config of the saved checkpoint.

    The blobs are serialised on the caller's thread or event loop: for a typical message
    list that costs less than the hop to a worker thread AsyncPostgresSaver takes.
    """
    conf = config["configurable"]
    thread_id, ns = conf["thread_id"], conf["checkpoint_ns"]
    stored = checkpoint.copy()
    inline = stored["channel_values"] = stored["channel_values"].copy()
    blob_values = {}
    for channel, value in checkpoint["channel_values"].items():
        if isinstance(value, _DeltaSnapshot):
            blob_values[channel] = inline.pop(channel)
            inline[channel] = True
        elif not (value is None or isinstance(value, str | int | float | bool)):
            blob_values[channel] = inline.pop(channel)
    queries, scope = _scoped(saver, config)
    if blob_versions := {k: v for k, v in new_versions.items() if k in blob_values}:
        blobs = saver._dump_blobs(thread_id, ns, blob_values, blob_versions)
        queries.append(Query(saver.UPSERT_CHECKPOINT_BLOBS_SQL, many=blobs))
    meta = Jsonb(get_serializable_checkpoint_metadata(config, metadata))
    row = (thread_id, ns, checkpoint["id"], conf.get("checkpoint_id"), Jsonb(stored), meta)
    queries.append(Query(saver.UPSERT_CHECKPOINTS_SQL, row))
    mirror = None
    if recorder is not None and recorder.wants(config):
        mirror = recorder.prepare(config, checkpoint, metadata, new_versions, scope[1])
        queries += mirror.queries
    parent = conf.get("checkpoint_id")
    key = (thread_id, ns, parent, scope) if parent else None
    saved = {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}
    return Write(queries, mirror, key), {"configurable": saved}


def writes_write(
    saver: Saver,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> Write:
    """``PostgresSaver.put_writes``'s rows: special channels (errors, interrupts) replace
    an earlier write of the same index, others are written once. Special writes have no
    key: no checkpoint follows them soon (the run stops, or resumes only after its nodes
    ran), so waiting for one would only delay them."""
    conf = config["configurable"]
    special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
    statement = (
        saver.UPSERT_CHECKPOINT_WRITES_SQL if special else saver.INSERT_CHECKPOINT_WRITES_SQL
    )
    ids = (conf["thread_id"], conf["checkpoint_ns"], conf["checkpoint_id"])
    rows = saver._dump_writes(*ids, task_id, task_path, writes)
    queries, scope = _scoped(saver, config)
    return Write([*queries, Query(statement, many=rows)], key=None if special else (*ids, scope))
