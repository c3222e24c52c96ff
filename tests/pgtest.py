"""Helpers the test modules import (a plain module: ``conftest`` names clash across folders)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import make_conninfo

#: Migrated template database, one per pytest process so parallel runs never collide.
TEMPLATE = f"pgstore_tpl_{os.getpid()}"


def url_for(server_url: str, dbname: str) -> str:
    """The server's URL pointed at another database."""
    return make_conninfo(server_url, dbname=dbname)


@contextmanager
def migrated_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """A database of its own cloned from the migrated template, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield url_for(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
