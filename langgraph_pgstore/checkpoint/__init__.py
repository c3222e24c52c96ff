"""Checkpointers built on langgraph-checkpoint-postgres's tables: ``sync`` and ``aio``."""

from .aio import AsyncPgCheckpointer
from .sync import PgCheckpointer

__all__ = ["AsyncPgCheckpointer", "PgCheckpointer"]
