"""Input checks, run before any IO: a rejected op raises our error naming the argument and
leaves the database as it was.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from langgraph.store.base import InvalidNamespaceError

from ..errors import InvalidInput, SerializationError

__all__ = [
    "NamespaceError",
    "check_count",
    "check_key",
    "check_number",
    "check_ttl",
    "check_vectors",
    "dumps",
    "encode_value",
    "validate_namespace",
]

#: Bytes of a namespace (dot-joined) or a key: both are btree-indexed, whose entries are
#: limited to about 2.7 kB; longer ones would fail in the server with a less clear error.
MAX_LABEL_BYTES = 1024
#: Largest ``limit``: a page is held in memory (ours and the caller's).
MAX_LIMIT = 10_000
#: Deepest nesting of a value (containers inside containers).
MAX_DEPTH = 100


class NamespaceError(InvalidInput, InvalidNamespaceError):
    """A namespace LangGraph would reject (empty, dotted or empty label, not a string, NUL)."""


def validate_namespace(
    namespace: Any, *, allow_empty: bool = False, what: str = "namespace"
) -> tuple[str, ...]:
    """LangGraph's label rules, raised as :class:`NamespaceError` (also InvalidNamespaceError)."""
    if not isinstance(namespace, tuple | list):
        raise NamespaceError(f"{what} must be a tuple of strings, got {type(namespace).__name__}")
    ns = tuple(namespace)
    if not ns and not allow_empty:
        raise NamespaceError(f"{what} cannot be empty")
    for label in ns:
        if not isinstance(label, str):
            raise NamespaceError(f"{what} labels must be strings, got {label!r} in {ns!r}")
        if not label:
            raise NamespaceError(f"{what} labels cannot be empty strings: {ns!r}")
        if "." in label:
            raise NamespaceError(f"{what} labels cannot contain '.': {label!r} in {ns!r}")
        if "\x00" in label:
            raise NamespaceError(f"{what} labels cannot contain NUL bytes: {ns!r}")
    if _utf8_len(".".join(ns), what) > MAX_LABEL_BYTES:
        raise NamespaceError(f"{what} is longer than {MAX_LABEL_BYTES} bytes")
    return ns


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key or "\x00" in key:
        raise InvalidInput(f"key must be a non-empty string without NUL, got {key!r:.80}")
    if _utf8_len(key, "key") > MAX_LABEL_BYTES:
        raise InvalidInput(f"key is longer than {MAX_LABEL_BYTES} bytes")
    return key


def _utf8_len(text: str, what: str) -> int:
    try:
        return len(text.encode())
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid Unicode (lone surrogate): {exc}") from exc


def dumps(value: Any, what: str) -> str:
    """JSON text of ``value``; anything jsonb can't hold exactly raises naming ``what``."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except RecursionError as exc:
        raise InvalidInput(f"{what} is nested too deeply to store") from exc
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{what} is not JSON-serialisable: {exc}") from exc


def encode_value(value: Any, key: str, max_bytes: int) -> str:
    """Check a put's value (a dict of JSON) and return its JSON text."""
    if not isinstance(value, Mapping):
        raise SerializationError(f"value must be a dict, got {type(value).__name__}")
    _walk(value)
    text = dumps(value, "value")
    size = _utf8_len(text, "value")
    if size > max_bytes:
        raise InvalidInput(
            f"value for key {key!r:.80} is {size} bytes; the limit is {max_bytes} (max_value_bytes)"
        )
    return text


def _walk(value: Any) -> None:
    """What ``json.dumps`` would accept but not keep: non-string keys (1 becomes "1"), NUL
    (jsonb rejects it), and nesting deep enough to exhaust a recursion limit."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                raise InvalidInput("value contains a NUL character, which jsonb can't store")
            continue
        if depth > MAX_DEPTH:
            raise InvalidInput(f"value is nested more than {MAX_DEPTH} levels deep")
        if isinstance(v, Mapping):
            for k, item in v.items():
                if not isinstance(k, str):
                    raise SerializationError(f"value keys must be strings, got {k!r:.40}")
                stack.append((k, depth))
                stack.append((item, depth + 1))
        elif isinstance(v, list | tuple):
            stack.extend((item, depth + 1) for item in v)


def check_number(
    value: Any, what: str, *, low: float | None = None, high: float | None = None
) -> float:
    """A finite real number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{what} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise InvalidInput(f"{what} must be in {bounds}, got {value!r}")
    return float(value)


def check_ttl(ttl: Any) -> float | None:
    """Minutes until expiry: positive, or None for never."""
    if ttl is None:
        return None
    minutes = check_number(ttl, "ttl")
    if minutes <= 0:
        raise InvalidInput(f"ttl must be a positive number of minutes (or None), got {ttl!r}")
    return minutes


def check_count(value: Any, what: str, most: int = MAX_LIMIT) -> int:
    """``limit``/``offset``/``max_depth``: a plain int in [0, most] (no "5", no 5.0)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an int, got {type(value).__name__} {value!r:.40}")
    if not 0 <= value <= most:
        raise InvalidInput(f"{what} must be in 0..{most}, got {value}")
    return value


def check_vectors(vectors: Any, expected: int, dims: int, what: str) -> np.ndarray:
    """One finite, non-zero vector of ``dims`` floats per text, as float32."""
    if not isinstance(vectors, Sequence | np.ndarray):
        raise InvalidInput(f"{what} must return a list of vectors, got {type(vectors).__name__}")
    if len(vectors) != expected:
        raise InvalidInput(
            f"{what} returned {len(vectors)} vectors for {expected} texts (one per text needed)"
        )
    if not expected:
        return np.zeros((0, dims), dtype=np.float32)
    try:
        arr = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} returned ragged or non-numeric vectors: {exc}") from exc
    if arr.ndim != 2 or arr.shape[1] != dims:
        shape = arr.shape[1:] if arr.ndim > 1 else "scalars"
        raise InvalidInput(f"{what} returned vectors of shape {shape}; the index has dims={dims}")
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{what} returned NaN or infinite values")
    if (np.linalg.norm(arr, axis=1) == 0).any():
        raise InvalidInput(f"{what} returned an all-zero vector (similarity is undefined)")
    return arr.astype(np.float32)
