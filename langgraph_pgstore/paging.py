"""Pages, cursors and ids: the one shape every list of the package returns.

A list is keyset-paginated: ``{"items": [...], "next_cursor": str | None}``; pass
``next_cursor`` back as ``cursor`` for the next page. A cursor is opaque to callers: URL-safe
base64 of a JSON list of the sort key of the last item (timestamps in ISO 8601), so it fits a
query string and survives a round trip through the CLI or HTTP unchanged. Python, the CLI's
``--json`` and the HTTP API all use these names.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypedDict, TypeVar
from uuid import UUID

from .errors import InvalidInput

__all__ = ["MAX_LIMIT", "Page", "check_limit", "decode_cursor", "encode_cursor", "page", "parse_id"]

T = TypeVar("T")

#: Largest page any list returns.
MAX_LIMIT = 1000


class Page(TypedDict, Generic[T]):
    """One page of a keyset-paginated list."""

    items: list[T]
    next_cursor: str | None


def parse_id(value: UUID | str, what: str = "id") -> UUID:
    """A UUID from a UUID or its text; ``InvalidInput`` naming ``what`` otherwise."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a UUID, got {value!r}") from exc


def check_limit(limit: Any, maximum: int = MAX_LIMIT) -> int:
    """``limit`` if it is an int in 1..maximum, else ``InvalidInput`` naming the argument."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be an int in 1..{maximum}, got {limit!r}")
    return limit


def encode_cursor(*parts: Any) -> str:
    """Opaque cursor for a sort key (datetimes as ISO 8601, everything else as text)."""
    raw = json.dumps([p.isoformat() if isinstance(p, datetime) else str(p) for p in parts])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *kinds: Callable[[str], Any]) -> list[Any]:
    """The sort key of ``cursor``, each part converted by ``kinds`` (``datetime.fromisoformat``,
    ``UUID``, ``int`` ...); ``InvalidInput`` for anything malformed."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        if not isinstance(parts, list) or len(parts) != len(kinds):
            raise ValueError("wrong shape")
        return [kind(str(part)) for kind, part in zip(kinds, parts, strict=True)]
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput(f"malformed cursor {cursor!r}") from exc


def page(rows: Sequence[T], limit: int, key: Callable[[T], Sequence[Any]]) -> Page[T]:
    """A page from ``limit + 1`` fetched rows: the extra row only says another page exists."""
    items = list(rows[:limit])
    nxt = encode_cursor(*key(items[-1])) if len(rows) > limit and items else None
    return Page(items=items, next_cursor=nxt)
