"""One test body for both checkpointers (a plain module the tests import).

The ``side`` fixture (conftest) is a :class:`Side` over ``sync`` then ``async``: it drives
graphs, the checkpointer and the conversations API through ``Database`` or ``AsyncDatabase``
with one awaitable API, so every behaviour test runs on both. :class:`Threaded` puts the sync
checkpointer behind the async methods the conformance suite calls.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple

from langgraph_pgstore import AsyncDatabase, Database


class Side:
    """Our parts on one side (sync or async), awaitable either way."""

    def __init__(self, db: Database | AsyncDatabase) -> None:
        self.db = db
        self.is_async = isinstance(db, AsyncDatabase)
        self.kind = "async" if self.is_async else "sync"

    @property
    def checkpointer(self) -> Any:
        return self.db.checkpointer

    async def invoke(self, graph: Any, value: Any, config: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return await graph.ainvoke(value, config, **kwargs)
        return graph.invoke(value, config, **kwargs)

    def start(self, graph: Any, value: Any, config: Any) -> asyncio.Future[Any]:
        """An invoke running concurrently with the caller (the sync one in a thread)."""
        if self.is_async:
            return asyncio.ensure_future(graph.ainvoke(value, config))
        return asyncio.ensure_future(asyncio.to_thread(graph.invoke, value, config))

    async def state(self, graph: Any, config: Any) -> Any:
        return await graph.aget_state(config) if self.is_async else graph.get_state(config)

    async def history(self, graph: Any, config: Any) -> list[Any]:
        if self.is_async:
            return [s async for s in graph.aget_state_history(config)]
        return list(graph.get_state_history(config))

    async def update_state(self, graph: Any, config: Any, values: Any, **kwargs: Any) -> Any:
        if self.is_async:
            return await graph.aupdate_state(config, values, **kwargs)
        return graph.update_state(config, values, **kwargs)

    async def saver(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``checkpointer.<method>`` (``a<method>`` on the async side), awaited."""
        if self.is_async:
            return await getattr(self.checkpointer, "a" + method)(*args, **kwargs)
        return getattr(self.checkpointer, method)(*args, **kwargs)

    async def listed(self, config: Any, **kwargs: Any) -> list[CheckpointTuple]:
        if self.is_async:
            return [t async for t in self.checkpointer.alist(config, **kwargs)]
        return list(self.checkpointer.list(config, **kwargs))

    async def conv(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``conversations.<method>`` (``a<method>`` when the async class has it), awaited."""
        parts = self.db.conversations
        fn = getattr(parts, "a" + method, None) if self.is_async else None
        result = (fn or getattr(parts, method))(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result


class Threaded(BaseCheckpointSaver[str]):
    """A sync checkpointer behind the async API (each call in a worker thread), so that the
    conformance suite, which awaits ``aput`` and friends, exercises its sync methods."""

    def __init__(self, saver: Any) -> None:
        super().__init__(serde=saver.serde)
        self.saver = saver

    def get_next_version(self, current: Any, channel: None) -> str:
        return str(self.saver.get_next_version(current, channel))

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.saver.get_tuple, config)

    async def alist(
        self, config: RunnableConfig | None, **kwargs: Any
    ) -> AsyncIterator[CheckpointTuple]:
        def listed() -> Iterator[CheckpointTuple]:
            return iter(list(self.saver.list(config, **kwargs)))

        for item in await asyncio.to_thread(listed):
            yield item

    async def aput(self, *args: Any) -> RunnableConfig:
        return await asyncio.to_thread(self.saver.put, *args)

    async def aput_writes(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.to_thread(self.saver.put_writes, *args, **kwargs)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.saver.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.saver.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.saver.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], **kwargs: Any) -> None:
        await asyncio.to_thread(self.saver.prune, thread_ids, **kwargs)
