"""What the memory tests share: fake embeddings, and a driver that calls any store the same
way, so one test body runs against our sync and async stores and against LangGraph's
``InMemoryStore`` and ``PostgresStore`` (a plain module: ``conftest`` names clash)."""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langgraph.store.base import BaseStore

#: Backends the shared contract runs on: ours (sync, async) and LangGraph's anchors.
OURS = ("pg", "apg")
UPSTREAM = ("inmem", "postgres")


#: ``make_store(**options)``: a store of the test's backend (fixtures in conftest.py).
MakeStore: TypeAlias = "Callable[..., Awaitable[Driver]]"


class CharacterEmbeddings(Embeddings):
    """LangGraph's test embeddings (libs/checkpoint-postgres/tests/embed_test_utils.py):
    character frequencies through fixed random projections, unit length."""

    def __init__(self, dims: int = 64, seed: int = 42) -> None:
        self._rng = random.Random(seed)
        self.dims = dims
        self._proj: defaultdict[str, list[float]] = defaultdict(
            lambda: [self._rng.gauss(0, 1 / math.sqrt(self.dims)) for _ in range(self.dims)]
        )

    def _one(self, text: str) -> list[float]:
        counts = Counter(text)
        total = sum(counts.values())
        vec = [0.0] * self.dims
        for char, count in counts.items():
            for i, p in enumerate(self._proj[char]):
                vec[i] += count / total * p
        norm = math.sqrt(sum(x * x for x in vec)) or 1.0
        return [x / norm for x in vec]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._one(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._one(text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharacterEmbeddings) and self.dims == other.dims

    __hash__ = None  # type: ignore[assignment]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


class Driver:
    """``await d.put(...)`` runs the store's ``put`` in a worker thread (sync stores) or
    awaits its ``aput`` (async stores): one test body, both APIs."""

    def __init__(self, store: BaseStore, backend: str) -> None:
        self.store = store
        self.backend = backend
        self.ours = backend in OURS
        self.is_async = backend.startswith("a")

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        store = self.store

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.is_async:
                method = getattr(store, "a" + name, None) or getattr(store, name)
                return await method(*args, **kwargs)
            return await asyncio.to_thread(getattr(store, name), *args, **kwargs)

        return call

    async def settle(self) -> None:
        """Let background bookkeeping (our access writer) reach the database."""
        if self.ours:
            await self.flush()

    def __repr__(self) -> str:
        return f"Driver({self.backend})"


def url_of(store: BaseStore) -> str:
    """The database URL a store (ours or LangGraph's) writes to."""
    import psycopg

    conn = store.conn  # type: ignore[attr-defined]
    if isinstance(conn, psycopg.Connection):
        return conn.info.dsn
    return str(conn.conninfo)


def rows(store: BaseStore, query: str, params: Any = None) -> list[dict[str, Any]]:
    """Run ``query`` on the store's database, outside the store (to look at what it wrote)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url_of(store), autocommit=True, row_factory=dict_row) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


WORDS = ["apple", "banana", "cherry", "dog", "cat", "car", "train", "plane"]


def bag_of_words(texts: list[str]) -> list[list[float]]:
    """Deterministic vectors: texts sharing words of WORDS are similar (never all-zero)."""
    out = []
    for t in texts:
        v = [1.0 if w in t.lower() else 0.0 for w in WORDS]
        v[-1] += 0.01
        out.append(v)
    return out


def bow_index(**extra: Any) -> dict[str, Any]:
    return {"dims": len(WORDS), "embed": bag_of_words, **extra}


class FakeToolModel(BaseChatModel):
    """A tool-calling chat model without network, standing in for an LLM by rule.

    - Asked to extract memories (LangMem's memory manager binds ``Memory`` and ``PatchDoc``):
      every user statement (not a question) becomes a memory in the third person; one that
      shares a subject word with an existing memory patches that memory instead.
    - As an agent with LangMem's tools (``manage_memory``, ``search_memory``): a statement is
      stored, a question searched, and a tool result answered with the memory it found.
    """

    @property
    def _llm_type(self) -> str:
        return "fake-tools"

    def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kwargs: Any) -> Any:
        from langchain_core.utils.function_calling import convert_to_openai_tool

        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: list[Any], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> Any:
        from langchain_core.outputs import ChatGeneration, ChatResult

        names = {t["function"]["name"] for t in kwargs.get("tools", [])}
        if "Memory" in names:
            message = self._extract(messages, names)
        elif "manage_memory" in names:
            message = self._agent(messages)
        else:
            message = AIMessage("ok")
        return ChatResult(generations=[ChatGeneration(message=message)])

    @staticmethod
    def _extract(messages: list[Any], names: set[str]) -> AIMessage:
        import re

        prompt = "\n".join(str(m.content) for m in messages)
        existing = dict(
            re.findall(r"<instance id=(\S+) schema_type=\"Memory\">\n\{'content': '(.*)'\}", prompt)
        )
        said = re.findall(r"Human Message =+\n\n(.*?)(?=\n\n=+ |\Z)", prompt, re.S)
        calls = []
        for text in said:
            if text.strip().endswith("?"):
                continue
            fact = third_person(text.strip())
            words = {w for w in re.findall(r"\w{4,}", fact.lower())}
            same = [i for i, c in existing.items() if words & set(re.findall(r"\w{4,}", c.lower()))]
            if same and "PatchDoc" in names:
                args = {
                    "json_doc_id": same[0],
                    "planned_edits": "replace the content with the newer fact",
                    "patches": [{"op": "replace", "path": "/content", "value": fact}],
                }
                calls.append({"name": "PatchDoc", "args": args, "id": f"call_{len(calls)}"})
            else:
                calls.append(
                    {"name": "Memory", "args": {"content": fact}, "id": f"call_{len(calls)}"}
                )
        return AIMessage("", tool_calls=calls)

    @staticmethod
    def _agent(messages: list[Any]) -> AIMessage:
        import json

        last = messages[-1]
        if last.type == "tool":
            found = json.loads(last.content) if last.name == "search_memory" else []
            if last.name == "search_memory":
                best = found[0]["value"]["content"] if found else "nothing"
                return AIMessage(f"From memory: {best}")
            return AIMessage("Noted.")
        text = str(last.content)
        if text.endswith("?"):
            call = {"name": "search_memory", "args": {"query": text}, "id": "call_s"}
        else:
            content = third_person(text)
            call = {
                "name": "manage_memory",
                "args": {"content": content, "action": "create"},
                "id": "call_m",
            }
        return AIMessage("", tool_calls=[call])


def third_person(text: str) -> str:
    """'I am allergic to peanuts.' -> 'User is allergic to peanuts' (what a model would write)."""
    import re

    out = re.sub(r"\bmy\b", "their", text.strip().rstrip("."))
    if out.startswith("I am "):
        return "User is " + out[5:]
    m = re.match(r"I (\w+)(.*)", out)
    if not m:
        return out
    verb = m.group(1) if m.group(1).endswith(("ed", "s")) else m.group(1) + "s"
    return f"User {verb}{m.group(2)}"
