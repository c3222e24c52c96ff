"""Sans-IO operations that mirror a checkpoint's messages into ``sessions``/``messages``.

The write half of conversations: :mod:`.recorder` (called by the checkpointers) runs
:func:`mirror_messages` in the checkpoint's own transaction; :mod:`.mirror` turns messages
into rows and documents the semantics. Reads of these tables live in :mod:`.ops`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from .._ops import Op, Query
from .mirror import MESSAGE_COLS, MessageRow
from .ops import ensure_session

__all__ = ["ThreadState", "load_thread_state", "mirror_messages"]

#: Seconds between refreshes of ``sessions.updated_at`` by the mirror (see mirror_messages).
TOUCH_EVERY = 2.0
TOUCH_SESSION_SQL = "UPDATE sessions SET updated_at = now() WHERE id = %s"

#: One row per (session, message id); a replaced or returning message updates in place.
UPSERT_MESSAGE_SQL = f"""
INSERT INTO messages (owner_id, session_id, position, checkpoint_ns, checkpoint_id,
                      {MESSAGE_COLS})
VALUES (%s, %s, %s, '', %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (session_id, message_id) DO UPDATE SET
  position = EXCLUDED.position, checkpoint_id = EXCLUDED.checkpoint_id, role = EXCLUDED.role,
  name = EXCLUDED.name, content = EXCLUDED.content, content_parts = EXCLUDED.content_parts,
  tool_calls = EXCLUDED.tool_calls, tool_call_id = EXCLUDED.tool_call_id,
  input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens,
  total_tokens = EXCLUDED.total_tokens, metadata = EXCLUDED.metadata, removed_at = NULL,
  embedding = CASE WHEN messages.content = EXCLUDED.content THEN messages.embedding END
"""
UPSERT_MESSAGE_NOVEC_SQL = UPSERT_MESSAGE_SQL.rsplit(",\n  embedding", 1)[0] + "\n"

REMOVE_MESSAGES_SQL = """
UPDATE messages SET removed_at = now(), checkpoint_id = %s
WHERE session_id = %s AND message_id = ANY(%s) AND removed_at IS NULL
"""

KNOWN_MESSAGES_SQL = f"""
SELECT position, removed_at IS NULL AS active, {MESSAGE_COLS}
FROM messages WHERE session_id = %s
"""


@dataclass
class ThreadState:
    """What the mirror knows is in the table for one thread (valid after commit)."""

    session_id: uuid.UUID
    rows: dict[str, tuple[int, MessageRow, bool]] = field(default_factory=dict)
    #: message id -> (the message object, its row): unchanged objects aren't re-converted.
    objs: dict[str, tuple[Any, MessageRow]] = field(default_factory=dict)
    touched: float = field(default_factory=time.monotonic)
    #: The session's owner (the thread's): its messages get it too.
    owner: str | None = None

    def serves(self, owner: str | None) -> bool:
        """Whether a write on behalf of ``owner`` can use this state without going back to
        the session row (the thread has that owner, or the write names none)."""
        return owner is None or owner == self.owner


def load_thread_state(session_id: uuid.UUID, owner: str | None) -> Op[ThreadState]:
    rows = yield Query(KNOWN_MESSAGES_SQL, (session_id,))
    state = ThreadState(session_id, owner=owner)
    for r in rows:
        row = (
            r["message_id"],
            r["role"],
            r["name"],
            r["content"],
            json.dumps(r["content_parts"]) if r["content_parts"] is not None else None,
            json.dumps(r["tool_calls"]) if r["tool_calls"] is not None else None,
            r["tool_call_id"],
            r["input_tokens"],
            r["output_tokens"],
            r["total_tokens"],
            json.dumps(r["metadata"]),
        )
        state.rows[r["message_id"]] = (r["position"], row, r["active"])
    return state


def mirror_messages(
    thread_id: str,
    checkpoint_id: str,
    rows: list[MessageRow] | None,
    known: ThreadState | None,
    *,
    owner: str | None = None,
    email: str | None = None,
    has_vector: bool = True,
) -> Op[ThreadState | None]:
    """Bring the thread's session and message rows in line with one checkpoint written on
    behalf of ``owner`` (``email``: an attribute of a user created here).

    ``rows`` is the checkpoint's message list (None: the channel did not change). Returns
    the new known state, to be cached by the caller only once the transaction commits.
    With a ``known`` state that :meth:`ThreadState.serves` the owner, no statement returns
    rows, so the caller may pipeline them; otherwise the session row decides (and is claimed
    by its first owner).
    """
    if known is not None and not known.serves(owner):
        known = None
    if known is not None:
        if rows is None:
            return known
        # No RETURNING on this path, so the checkpointer can pipeline it. A session deleted
        # behind our back surfaces as a foreign-key violation: the caller forgets and retries.
        # ``updated_at`` is refreshed at most every TOUCH_EVERY seconds (a non-HOT update).
        now = time.monotonic()
        if now - known.touched >= TOUCH_EVERY:
            yield Query(TOUCH_SESSION_SQL, (known.session_id,))
            known = replace(known, touched=now)
    else:
        sid, created, session_owner = yield from ensure_session(thread_id, owner=owner, email=email)
        if created:
            known = ThreadState(sid, owner=session_owner)
        else:
            known = yield from load_thread_state(sid, session_owner)
    if rows is None:
        return known
    new = replace(known, rows=dict(known.rows))
    seen: set[str] = set()
    upserts = []
    for position, row in enumerate(rows):
        mid = row[0] if row[0] is not None else f"~{position}"
        if row[0] is None:
            row = (mid, *row[1:])
        if mid in seen:
            continue
        seen.add(mid)
        old = known.rows.get(mid)
        if old is None or old[0] != position or old[1] != row or not old[2]:
            upserts.append((known.owner, known.session_id, position, checkpoint_id, *row))
            new.rows[mid] = (position, row, True)
    gone = [mid for mid, (_, _, active) in known.rows.items() if active and mid not in seen]
    if upserts:
        yield Query(UPSERT_MESSAGE_SQL if has_vector else UPSERT_MESSAGE_NOVEC_SQL, many=upserts)
    if gone:
        yield Query(REMOVE_MESSAGES_SQL, (checkpoint_id, known.session_id, gone))
        for mid in gone:
            pos, row, _ = new.rows[mid]
            new.rows[mid] = (pos, row, False)
    return new
