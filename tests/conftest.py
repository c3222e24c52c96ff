"""Real PostgreSQL for every test: DATABASE_URL when set, else the embedded server.

The schema is migrated once into a template database; each test gets a fresh database
cloned from it (``CREATE DATABASE ... TEMPLATE``), so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from pgtest import TEMPLATE, app_role, url_for
from savers import Side

from langgraph_pgstore import AsyncDatabase, Database
from langgraph_pgstore.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """Admin URL of the server under test."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from langgraph_pgstore.embedded import EmbeddedServer

    data_dir = Path(os.environ.get("PGSTORE_TEST_DATA_DIR", ROOT / ".pgstore-test" / "pg17"))
    server = EmbeddedServer.start(data_dir)
    yield server.url


@pytest.fixture(scope="session")
def template_url(server_url: str) -> Iterator[str]:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    url = url_for(server_url, TEMPLATE)
    migrate(url)
    yield url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")


@pytest.fixture
def fresh_db_url(server_url: str) -> Iterator[str]:
    """An empty, unmigrated database."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield url_for(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_url(server_url: str, template_url: str) -> Iterator[str]:
    """A migrated database of this test's own."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield url_for(server_url, name)
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def app_url(db_url: str) -> Iterator[str]:
    """URL of an application role on ``db_url`` (DML grants only: row-level security binds it)."""
    with app_role(db_url) as url:
        yield url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    with Database.connect(db_url, max_size=8) as database:
        yield database


@pytest.fixture
async def adb(db_url: str) -> AsyncIterator[AsyncDatabase]:
    async with AsyncDatabase.connect(db_url, max_size=8) as database:
        yield database


@pytest.fixture(params=["sync", "async"])
async def side(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Side]:
    """Our checkpointer and conversations, sync then async, on this test's database."""
    if request.param == "sync":
        with Database.connect(db_url, max_size=8) as database:
            yield Side(database)
    else:
        async with AsyncDatabase.connect(db_url, max_size=8) as adatabase:
            yield Side(adatabase)
