"""Semantic memory tables (the BaseStore adapter). Filled in by the memory module."""

from __future__ import annotations
