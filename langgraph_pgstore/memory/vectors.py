"""Query and document vectors on the wire: float32 in pgvector's binary format."""

from __future__ import annotations

import struct

import numpy as np
import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

__all__ = ["Vec", "vec_text"]

_HEADER = struct.Struct(">HH")


class Vec:
    """A float32 vector sent in pgvector's binary format (no text formatting or parsing)."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray) -> None:
        self.a = a


class _VecDumper(Dumper):
    format = Format.BINARY
    oid = 0  # the server infers ``vector`` from the ``::vector`` cast next to the parameter

    def dump(self, obj: Vec) -> bytes:
        return _HEADER.pack(obj.a.shape[0], 0) + obj.a.astype(">f4").tobytes()


psycopg.adapters.register_dumper(Vec, _VecDumper)


def vec_text(v: np.ndarray) -> str:
    """pgvector's text form, for parameters inside arrays (binary arrays of vectors would
    need the type's OID)."""
    return "[" + ",".join(["%.9g"] * len(v)) % tuple(v.tolist()) + "]"
