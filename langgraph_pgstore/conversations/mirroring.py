"""Sans-IO operations that mirror a checkpoint's messages into ``sessions``/``messages``.

The write half of conversations: :mod:`.recorder` (called by the checkpointers) puts these
statements in the checkpoint's own transaction; :mod:`.mirror` turns messages into rows and
documents the semantics. Reads of these tables live in :mod:`.ops`.

Two ways to bring the table in line with a checkpoint's message list:

- :func:`diff` (the usual case): the process mirrored this thread's previous checkpoint, so
  it knows what the table shows and sends only what changed (typically one appended
  message), in statements that return nothing: the checkpointer pipelines them with the
  checkpoint itself, one round trip in all.
- :func:`sync_thread` (first sight of a thread in this process, a fork, a foreign writer):
  the session row is ensured (and its owner checked), then the whole list is sent in one
  statement and the server keeps what is unchanged, updates what differs and marks the
  rest removed. Nothing depends on what this process remembers.

Either way the outcome is the same rule: the visible mirrored rows are the list of the
checkpoint written last. Messages added by hand (``Conversations.add_message``, no
``checkpoint_id``) are the application's own and never marked removed by the mirror.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .._ops import Op, Query
from .mirror import COLUMN_TYPES, MessageRow
from .ops import HAS_EMBEDDING_SQL, ensure_session

__all__ = ["ThreadState", "append", "diff", "sync_thread"]

#: Seconds between refreshes of ``sessions.updated_at`` by the mirror (see :func:`diff`).
TOUCH_EVERY = 2.0
TOUCH_SESSION_SQL = "UPDATE sessions SET updated_at = now() WHERE id = %(session)s"

#: The columns an upsert sends per row: the position, then the :class:`MessageRow` fields.
_SENT = {"position": "integer", **COLUMN_TYPES}


def _upsert_sql(has_vector: bool) -> str:
    """One statement for any number of rows, sent as one JSON array of objects::

        INSERT INTO messages AS m (owner_id, session_id, checkpoint_id, position, ...)
        SELECT %(owner)s, %(session)s, %(checkpoint)s, r.position, r.message_id, ...,
               r.content_parts::jsonb, ...
        FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(position integer, message_id text, ...)
        ON CONFLICT (session_id, message_id) DO UPDATE SET ... , removed_at = NULL
        WHERE m.removed_at IS NOT NULL OR (m.position, ...) IS DISTINCT FROM (EXCLUDED....)

    A row whose values are unchanged is left alone (no write, its ``checkpoint_id`` stays
    the one where it last changed); a replaced message updates in place and loses its
    embedding only if its content changed. JSON columns travel as the JSON text a
    :class:`MessageRow` holds and are cast on the server. Identifiers come from
    :class:`MessageRow`, never from input.
    """
    cols = list(_SENT)
    record = ", ".join(f"{c} {'text' if t == 'jsonb' else t}" for c, t in _SENT.items())
    values = ", ".join(f"r.{c}::jsonb" if t == "jsonb" else f"r.{c}" for c, t in _SENT.items())
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols)
    embedding = (
        ",\n  embedding = CASE WHEN m.content = EXCLUDED.content THEN m.embedding END"
        if has_vector
        else ""
    )
    return f"""
INSERT INTO messages AS m (owner_id, session_id, checkpoint_id, {", ".join(cols)})
SELECT %(owner)s, %(session)s, %(checkpoint)s, {values}
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({record})
ON CONFLICT (session_id, message_id) DO UPDATE SET
  checkpoint_id = EXCLUDED.checkpoint_id, {updates}, removed_at = NULL{embedding}
WHERE m.removed_at IS NOT NULL
   OR ({", ".join(f"m.{c}" for c in cols)}) IS DISTINCT FROM
      ({", ".join(f"EXCLUDED.{c}" for c in cols)})
"""


UPSERT_MESSAGES_SQL = _upsert_sql(has_vector=True)
UPSERT_MESSAGES_NOVEC_SQL = _upsert_sql(has_vector=False)

#: Rows that left the list (known to this process): hidden, with the checkpoint that did it.
REMOVE_MESSAGES_SQL = """
UPDATE messages SET removed_at = now(), checkpoint_id = %(checkpoint)s
WHERE session_id = %(session)s AND message_id = ANY(%(ids)s::text[]) AND removed_at IS NULL
"""
#: Every mirrored row not in the list (``checkpoint_id IS NULL``: added by hand, kept).
REMOVE_ALL_BUT_SQL = """
UPDATE messages SET removed_at = now(), checkpoint_id = %(checkpoint)s
WHERE session_id = %(session)s AND removed_at IS NULL AND checkpoint_id IS NOT NULL
  AND message_id <> ALL(%(keep)s::text[])
"""

#: message id -> (position, row) of the mirrored rows a thread shows.
Rows = dict[str, tuple[int, MessageRow]]


@dataclass
class ThreadState:
    """What the table shows for one thread, as this process last wrote it (valid after
    commit): only trusted for a checkpoint whose parent is :attr:`checkpoint_id`."""

    session_id: uuid.UUID
    #: The session's owner (the thread's): its messages get it too.
    owner: str | None
    #: The checkpoint whose message list the visible mirrored rows are.
    checkpoint_id: str
    #: Those rows.
    rows: Rows
    has_vector: bool
    #: message id -> (the message object, its row): unchanged objects aren't re-converted.
    objs: dict[str, tuple[Any, MessageRow]] = field(default_factory=dict)
    #: The message objects of that list, to tell an append from anything else.
    messages: list[Any] = field(default_factory=list)
    touched: float = field(default_factory=time.monotonic)

    def serves(self, owner: str | None, parent_id: str | None) -> bool:
        """Whether a write on behalf of ``owner`` that follows checkpoint ``parent_id`` can be
        diffed against this state: the thread has that owner (or the write names none) and
        the table still shows the parent's messages (no fork, no other writer since)."""
        return (owner is None or owner == self.owner) and parent_id == self.checkpoint_id


def _keyed(rows: Sequence[MessageRow], start: int = 0) -> Rows:
    """The list (from position ``start``) as the table keys it: by message id (an id-less
    message by its position), first occurrence wins."""
    out: Rows = {}
    for position, row in enumerate(rows, start):
        mid = row.message_id
        if mid is None:
            mid = f"~{position}"
            row = row._replace(message_id=mid)
        if mid not in out:
            out[mid] = (position, row)
    return out


def _same(old: tuple[int, MessageRow] | None, new: tuple[int, MessageRow]) -> bool:
    # an unchanged message is usually the very same row object: skip comparing its fields
    return old is not None and old[0] == new[0] and (old[1] is new[1] or old[1] == new[1])


def _upsert(
    state: ThreadState, checkpoint_id: str, rows: Sequence[tuple[int, MessageRow]]
) -> Query:
    payload = json.dumps([{"position": p, **row._asdict()} for p, row in rows])
    params = {"owner": state.owner, "session": state.session_id, "checkpoint": checkpoint_id}
    sql = UPSERT_MESSAGES_SQL if state.has_vector else UPSERT_MESSAGES_NOVEC_SQL
    return Query(sql, {**params, "rows": payload})


def _touch(state: ThreadState, queries: list[Query]) -> float:
    """Refresh ``sessions.updated_at`` along with a change, at most every TOUCH_EVERY
    seconds (a non-HOT update); returns the new touch time."""
    now = time.monotonic()
    if queries and now - state.touched >= TOUCH_EVERY:
        queries.append(Query(TOUCH_SESSION_SQL, {"session": state.session_id}))
        return now
    return state.touched


def diff(
    state: ThreadState, checkpoint_id: str, rows: Sequence[MessageRow] | None
) -> tuple[list[Query], ThreadState]:
    """Statements (none returns rows) that take the table from ``state`` to ``rows`` (None:
    the list did not change), and the state after them. ``state`` must
    :meth:`~ThreadState.serves` the write."""
    queries: list[Query] = []
    if rows is None:
        return queries, replace(state, checkpoint_id=checkpoint_id)
    new = _keyed(rows)
    changed = [row for mid, row in new.items() if not _same(state.rows.get(mid), row)]
    gone = [mid for mid in state.rows if mid not in new]
    if changed:
        queries.append(_upsert(state, checkpoint_id, changed))
    if gone:
        params = {"checkpoint": checkpoint_id, "session": state.session_id, "ids": gone}
        queries.append(Query(REMOVE_MESSAGES_SQL, params))
    touched = _touch(state, queries)
    return queries, replace(state, checkpoint_id=checkpoint_id, rows=new, touched=touched)


def append(
    state: ThreadState, checkpoint_id: str, rows: Sequence[MessageRow]
) -> tuple[list[Query], ThreadState] | None:
    """:func:`diff` for the usual case, in time proportional to what was appended: the list
    is the state's list followed by ``rows`` (None: an appended message reuses an id, let
    :func:`diff` decide). Updates ``state`` in place: the caller owns it."""
    start = len(state.messages)
    added = _keyed(rows, start)
    if any(mid in state.rows for mid in added):
        return None
    queries = [_upsert(state, checkpoint_id, list(added.values()))] if added else []
    state.touched = _touch(state, queries)
    state.rows.update(added)
    state.checkpoint_id = checkpoint_id
    return queries, state


def sync_thread(
    thread_id: str,
    checkpoint_id: str,
    rows: Sequence[MessageRow],
    *,
    owner: str | None = None,
    email: str | None = None,
    has_vector: bool | None = None,
) -> Op[ThreadState]:
    """Bring the thread's session and message rows in line with one checkpoint written on
    behalf of ``owner`` (``email``: an attribute of a user created here), knowing nothing.

    The session row decides the owner (a session that had none is claimed by its first
    owner; another user's write is refused). ``rows`` is the checkpoint's message list
    (empty when it has none). Returns the state to cache once the transaction commits.
    """
    if has_vector is None:  # a schema fact
        has_vector = bool((yield Query(HAS_EMBEDDING_SQL)))
    sid, _, session_owner = yield from ensure_session(thread_id, owner=owner, email=email)
    state = ThreadState(sid, session_owner, checkpoint_id, _keyed(rows), has_vector)
    if state.rows:
        yield _upsert(state, checkpoint_id, list(state.rows.values()))
    params = {"checkpoint": checkpoint_id, "session": sid, "keep": list(state.rows)}
    yield Query(REMOVE_ALL_BUT_SQL, params)
    return state
