"""Store fixtures: ``make_store(**options)`` builds the backend the test is parametrised on.

``contract`` tests request ``backend`` over ours (sync, async) and LangGraph's
``InMemoryStore`` and ``PostgresStore``; feature tests request ``ours`` (sync, async only).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from memhelp import OURS, UPSTREAM, CharacterEmbeddings, Driver, MakeStore

from langgraph_pgstore import AsyncDatabase, Database


@pytest.fixture
def embeddings() -> CharacterEmbeddings:
    return CharacterEmbeddings(dims=64)


@pytest.fixture(params=OURS + UPSTREAM)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=OURS)
def ours(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _factory(request: pytest.FixtureRequest, kind: str) -> AsyncIterator[MakeStore]:
    # the database first, so it is dropped after the stores are closed
    url = request.getfixturevalue("db_url") if kind != "inmem" else ""
    async with AsyncExitStack() as stack:
        hubs: dict[str, Any] = {}

        async def make(**options: Any) -> Driver:
            if kind == "inmem":
                from langgraph.store.memory import InMemoryStore

                return Driver(InMemoryStore(index=options.get("index")), kind)
            if kind == "postgres":
                from langgraph.store.postgres import PostgresStore

                store = stack.enter_context(
                    PostgresStore.from_conn_string(
                        url, index=options.get("index"), ttl=options.get("ttl")
                    )
                )
                store.setup()
                return Driver(store, kind)
            if kind not in hubs:
                if kind == "pg":
                    hubs[kind] = stack.enter_context(Database.connect(url, max_size=4))
                else:
                    hubs[kind] = await stack.enter_async_context(
                        AsyncDatabase.connect(url, max_size=4)
                    )
            store = hubs[kind].memory(**options)
            if kind == "pg":
                stack.callback(store.close)
            else:
                stack.push_async_callback(store.aclose)
            return Driver(store, kind)

        yield make


@pytest.fixture
async def make_store(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[MakeStore]:
    """Stores of the parametrised backend (ours or LangGraph's)."""
    async for make in _factory(request, backend):
        yield make


@pytest.fixture
async def make_ours(request: pytest.FixtureRequest, ours: str) -> AsyncIterator[MakeStore]:
    """Stores of ours, sync and async."""
    async for make in _factory(request, ours):
        yield make
