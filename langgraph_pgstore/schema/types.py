"""Column types shared by the table modules."""

from __future__ import annotations

from pgvector.sqlalchemy import Vector
from sqlalchemy import DateTime, text
from sqlalchemy.dialects.postgresql import JSONB, UUID

__all__ = ["JSONB", "NOW", "TZ", "UUID", "UUID_DEFAULT", "Vector"]

TZ = DateTime(timezone=True)
NOW = text("now()")
UUID_DEFAULT = text("gen_random_uuid()")
