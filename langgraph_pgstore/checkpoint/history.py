"""Fast ``list()`` (what ``get_state_history`` reads): decode each distinct message once.

Why PostgresSaver's ``list`` takes seconds on a long conversation: with an ``add_messages``
channel every checkpoint stores the whole message list as one blob, so 500 checkpoints hold
~125,000 serialised messages, and ``list`` rebuilds every one of them (a pydantic model
validation each). Measured on 520 checkpoints of 2-node loop: 0.5 s in SQL, 6.4 s in
deserialisation.

But consecutive blobs differ only by the appended message. A msgpack list of messages is an
array header followed by one self-contained ``ext`` record per message, so we split each blob
into its records (byte slicing, no decoding) and decode each distinct record once per
``list`` call. Every checkpoint gets its own list, but a message that several checkpoints
share is the same Python object in all of them: treat history snapshots as read-only views
(shallow-copying 125,000 pydantic messages would cost three times the decoding itself).
Anything that is not such an array (other serialisers, encrypted blobs, ``DeltaChannel``
snapshots) is decoded whole, as PostgresSaver does.

The query is PostgresSaver's own (``SELECT_SQL`` and ``_search_where``) on its binary cursor:
text-format bytea would triple the transfer time of these megabytes of blobs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple
from langgraph.checkpoint.postgres.base import BasePostgresSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg.rows import DictRow

from .._ops import translate_error

__all__ = [
    "BlobDecoder",
    "list_query",
    "load_tuples",
    "needs_legacy_path",
    "reraise_translated",
    "split_ext_array",
]

_FIXEXT_SIZES = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
_EXT_LEN_BYTES = {0xC7: 1, 0xC8: 2, 0xC9: 4}
_IMMUTABLE = (str, int, float, bool, bytes, type(None))


def array_header(blob: bytes) -> tuple[int, int] | None:
    """``(item count, header length)`` of a msgpack array, or None if ``blob`` isn't one."""
    if not blob:
        return None
    head = blob[0]
    if 0x90 <= head <= 0x9F:
        return head & 0x0F, 1
    if head == 0xDC and len(blob) >= 3:
        return int.from_bytes(blob[1:3], "big"), 3
    if head == 0xDD and len(blob) >= 5:
        return int.from_bytes(blob[1:5], "big"), 5
    return None


def split_ext_array(blob: bytes) -> tuple[bytes, list[bytes], list[int]] | None:
    """Split a msgpack array whose items are all ``ext`` records into the records' bytes.

    Returns ``(body, records, ends)`` (``ends``: offset in ``body`` after each record), or
    None for anything else (the caller then decodes the blob whole).
    """
    header = array_header(blob)
    if header is None:
        return None
    count, pos = header
    body = blob[pos:]
    items: list[bytes] = []
    ends: list[int] = []
    pos, end = 0, len(body)
    for _ in range(count):
        if pos >= end:
            return None
        tag = body[pos]
        if tag in _FIXEXT_SIZES:
            size = 2 + _FIXEXT_SIZES[tag]
        elif tag in _EXT_LEN_BYTES:
            width = _EXT_LEN_BYTES[tag]
            size = 2 + width + int.from_bytes(body[pos + 1 : pos + 1 + width], "big")
        else:
            return None
        items.append(body[pos : pos + size])
        pos += size
        ends.append(pos)
    return (body, items, ends) if pos == end else None


class _Decoded:
    """A decoded list-of-messages blob: its body bytes, record end offsets and values."""

    __slots__ = ("body", "ends", "values")

    def __init__(self, body: bytes, ends: list[int], values: list[Any]) -> None:
        self.body, self.ends, self.values = body, ends, values

    def prefix(self, count: int, body: bytes) -> list[Any] | None:
        """The values of an older blob whose ``count`` records are our first ``count``."""
        if count > len(self.values) or not self.body.startswith(body):
            return None
        if count == 0:
            return [] if not body else None
        return self.values[:count] if self.ends[count - 1] == len(body) else None


class BlobDecoder:
    """Decodes checkpoint blobs for one ``list`` call, sharing work between checkpoints.

    A message list blob of an older checkpoint is usually a byte prefix of a newer one's
    (``add_messages`` appends): then its values are a slice of the newer list, found with one
    ``startswith``. Otherwise the blob is split into records and each distinct record is
    decoded once.
    """

    def __init__(self, serde: SerializerProtocol) -> None:
        self.serde = serde
        self._items: dict[bytes, Any] = {}
        self._whole: dict[tuple[str, bytes], Any] = {}
        self._longest: dict[str, _Decoded] = {}

    def _decode_list(self, channel: str, blob: bytes) -> list[Any] | None:
        header = array_header(blob)
        if header is None:
            return None
        count, header_len = header
        known = self._longest.get(channel)
        if known is not None:
            values = known.prefix(count, blob[header_len:])
            if values is not None:
                return values
        split = split_ext_array(blob)
        if split is None:
            return None
        body, items, ends = split
        values = []
        for item in items:
            if item not in self._items:
                self._items[item] = self.serde.loads_typed(("msgpack", item))
            values.append(self._items[item])
        if known is None or len(values) >= len(known.values):
            self._longest[channel] = _Decoded(body, ends, values)
        return list(values)

    def decode(self, channel: str, type_: str, blob: bytes) -> Any:
        if type_ == "msgpack":
            values = self._decode_list(channel, blob)
            if values is not None:
                return values
        key = (type_, blob)
        if key in self._whole:
            return self._whole[key]
        value = self.serde.loads_typed((type_, blob))
        if isinstance(value, _IMMUTABLE):
            self._whole[key] = value
        return value

    def channel_values(self, blob_values: Sequence[Sequence[bytes]] | None) -> dict[str, Any]:
        """``{channel: value}`` from the rows' ``array[channel, type, blob]`` triples."""
        if not blob_values:
            return {}
        out: dict[str, Any] = {}
        for channel, type_, blob in blob_values:
            kind = bytes(type_).decode()
            if kind != "empty":
                name = bytes(channel).decode()
                out[name] = self.decode(name, kind, bytes(blob))
        return out


def list_query(
    saver: BasePostgresSaver,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The saver's own SELECT and WHERE clause, newest first."""
    where, args = saver._search_where(config, filter, before)
    query = saver.SELECT_SQL + where + " ORDER BY checkpoint_id DESC"
    params = list(args)
    if limit is not None:
        query += " LIMIT %s"
        params.append(int(limit))
    return query, params


def reraise_translated(exc: Exception) -> None:
    """Raise our error for a driver error (``raise ... from exc``); return for others."""
    mapped = translate_error(exc)
    if mapped is not None and mapped is not exc:
        raise mapped from exc


def needs_legacy_path(rows: Sequence[DictRow]) -> bool:
    """Checkpoints older than format v4 need the saver's pending-sends migration."""
    return any(r["checkpoint"]["v"] < 4 and r["parent_checkpoint_id"] for r in rows)


def _config(row: DictRow, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": row["thread_id"],
            "checkpoint_ns": row["checkpoint_ns"],
            "checkpoint_id": checkpoint_id,
        }
    }


def load_tuples(saver: BasePostgresSaver, rows: Sequence[DictRow]) -> Iterator[CheckpointTuple]:
    """Build the tuples lazily, newest first, with one decoder shared by all rows."""
    decoder = BlobDecoder(saver.serde)
    for row in rows:
        stored = row["checkpoint"]
        values = {
            **(stored.get("channel_values") or {}),
            **decoder.channel_values(row["channel_values"]),
        }
        checkpoint = cast(Checkpoint, {**stored, "channel_values": values})
        yield CheckpointTuple(
            _config(row, row["checkpoint_id"]),
            checkpoint,
            row["metadata"],
            _config(row, row["parent_checkpoint_id"]) if row["parent_checkpoint_id"] else None,
            saver._load_writes(row["pending_writes"]),
        )
