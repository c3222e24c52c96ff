"""What every benchmark script shares: the server it measures on and a scratch database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from langgraph_pgstore.migrate import migrate

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def server_url(explicit: str | None = None) -> Iterator[str]:
    """``explicit``, else DATABASE_URL, else the embedded server in ``.pgstore-bench/``."""
    url = explicit or os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from langgraph_pgstore.embedded import EmbeddedServer

    yield EmbeddedServer.start(ROOT / ".pgstore-bench" / "pg17").url


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A migrated database dropped afterwards, so runs never see each other's rows."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")  # name is ours, not user input
    try:
        url = make_conninfo(admin_url, dbname=name)
        migrate(url)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
