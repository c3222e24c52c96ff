"""Turn a checkpoint's ``messages`` channel into ``messages`` rows (pure functions).

Semantics (documented here once, tested in tests/test_conversations_mirror.py):

- Only the root graph (``checkpoint_ns == ""``) is mirrored; subgraph state is internal.
- The table mirrors the ``messages`` list of the thread's most recently *written* checkpoint.
  Each message (keyed by its LangChain id) has exactly one row; ``position`` is its index in
  that list and ``checkpoint_id`` the checkpoint where the row last changed.
- A message replaced by id (same id, new content) updates its row in place.
- A message that leaves the list (``RemoveMessage``, ``REMOVE_ALL_MESSAGES``, or a fork /
  ``update_state`` / replay from an older checkpoint whose list does not contain it) keeps its
  row with ``removed_at`` set; it is hidden from listings unless ``include_removed=True`` and
  comes back (``removed_at`` cleared) if a later checkpoint contains it again. So after any
  fork or time travel, the visible rows equal the state of the branch written last.
- A message added by hand (``Conversations.add_message``: a row without ``checkpoint_id``)
  is the application's, not the graph's: it keeps its place (after the messages visible when
  it was added) and the mirror never marks it removed. A graph message with the same id
  takes the row over.
- The table never depends on what one process remembers: a process mirrors by difference
  only a checkpoint that follows the one it mirrored last; otherwise (first sight of the
  thread, a fork, another process wrote in between) it sends the whole list and the server
  brings the rows in line.
- With LangGraph's ``DeltaChannel`` (beta) a checkpoint carries the list only at snapshots
  (every ``snapshot_frequency`` updates, 100 by default): the rows follow at each snapshot
  and are left as they are in between.
- Content Postgres can't store (NUL bytes, lone surrogates) is replaced by U+FFFD and the row's
  metadata gets ``"lossy": true``; the checkpoint itself keeps the exact original.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NamedTuple, get_type_hints

from langchain_core.messages import BaseMessage

__all__ = ["COLUMN_TYPES", "MESSAGE_COLS", "MessageRow", "clean_text", "message_row", "role_of"]


class MessageRow(NamedTuple):
    """The ``messages`` columns one message fills (without session, position, checkpoint).

    The fields name the columns and their annotations give each one's PostgreSQL type: the
    mirror's SQL (column lists, the upsert, the loader) is generated from them, and a test
    checks them against ``schema/``. Adding a column to ``messages`` means the migration,
    the schema declaration and a field here. JSON columns hold JSON *text*, so that two rows
    compare equal exactly when the stored values would be (change detection).
    """

    message_id: Annotated[str | None, "text"]
    role: Annotated[str, "text"]
    content: Annotated[str, "text"]
    name: Annotated[str | None, "text"] = None
    content_parts: Annotated[str | None, "jsonb"] = None
    tool_calls: Annotated[str | None, "jsonb"] = None
    tool_call_id: Annotated[str | None, "text"] = None
    input_tokens: Annotated[int | None, "integer"] = None
    output_tokens: Annotated[int | None, "integer"] = None
    total_tokens: Annotated[int | None, "integer"] = None
    metadata: Annotated[str, "jsonb"] = "{}"


#: PostgreSQL type of each :class:`MessageRow` field, in field order.
COLUMN_TYPES: dict[str, str] = {
    name: hint.__metadata__[0]
    for name, hint in get_type_hints(MessageRow, include_extras=True).items()
}
#: The ``messages`` columns of a :class:`MessageRow`, in its order.
MESSAGE_COLS = ", ".join(MessageRow._fields)
#: Their ``VALUES`` placeholders (JSON columns take the row's JSON text).
MESSAGE_PLACEHOLDERS = ", ".join(
    "%s::jsonb" if t == "jsonb" else "%s" for t in COLUMN_TYPES.values()
)


_ROLES = {
    "human": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "tool": "tool",
    "system": "system",
    "function": "function",
    "chat": "chat",
}


def role_of(message: BaseMessage) -> str:
    """OpenAI-style role: user, assistant, system, tool (ChatMessage keeps its own role)."""
    if message.type == "chat" and isinstance(role := getattr(message, "role", None), str):
        return role
    return _ROLES.get(message.type, message.type)


def clean_text(value: str) -> tuple[str, bool]:
    """Text Postgres accepts, and whether anything had to be replaced."""
    lossy = False
    if "\x00" in value:
        value, lossy = value.replace("\x00", "\ufffd"), True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
        lossy = True
    return value, lossy


def _clean_json(value: Any) -> tuple[Any, bool]:
    """JSON-safe copy (non-JSON values become their ``repr``), NULs/surrogates replaced."""
    lossy = False

    def walk(v: Any) -> Any:
        nonlocal lossy
        if isinstance(v, str):
            s, bad = clean_text(v)
            lossy = lossy or bad
            return s
        if v is None or isinstance(v, bool | int):
            return v
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                lossy = True
                return None
            return v
        if isinstance(v, Mapping):
            return {walk(str(k)): walk(x) for k, x in v.items()}
        if isinstance(v, Sequence | set | frozenset) and not isinstance(v, bytes | bytearray):
            return [walk(x) for x in v]
        if hasattr(v, "model_dump"):
            return walk(v.model_dump())
        lossy = True
        return walk(repr(v))

    out = walk(value)
    return out, lossy


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, Mapping) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def message_row(message: BaseMessage) -> MessageRow:
    """The row values of one message (without session, position or checkpoint)."""
    # The model's fields, read from its __dict__: a getattr of a field another message type
    # has (``tool_calls`` on a HumanMessage) goes through pydantic's slow __getattr__.
    fields = vars(message)
    text, lossy = clean_text(_text_of(message.content))
    parts = None
    if not isinstance(message.content, str):
        parts, bad = _clean_json(message.content)
        lossy = lossy or bad
    tool_calls = None
    if calls := fields.get("tool_calls"):
        tool_calls, bad = _clean_json(calls)
        lossy = lossy or bad
    usage = fields.get("usage_metadata") or {}
    meta: dict[str, Any] = {}
    if message.additional_kwargs:
        meta["additional_kwargs"] = message.additional_kwargs
    if message.response_metadata:
        meta["response_metadata"] = message.response_metadata
    if fields.get("status") == "error":
        meta["status"] = "error"
    if meta:
        meta, bad = _clean_json(meta)
        lossy = lossy or bad
    if lossy:
        meta["lossy"] = True
    name = clean_text(message.name)[0] if message.name else None
    return MessageRow(
        message_id=message.id,
        role=role_of(message),
        content=text,
        name=name,
        content_parts=json.dumps(parts) if parts is not None else None,
        tool_calls=json.dumps(tool_calls) if tool_calls is not None else None,
        tool_call_id=fields.get("tool_call_id"),
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        total_tokens=usage.get("total_tokens"),
        metadata=json.dumps(meta) if meta else "{}",
    )


def messages_of(channel_value: Any) -> list[BaseMessage] | None:
    """The message list in a checkpoint's channel value, or None if it isn't one."""
    value = getattr(channel_value, "value", channel_value)  # _DeltaSnapshot wraps the list
    if not isinstance(value, list):
        return None
    return [m for m in value if isinstance(m, BaseMessage)]
