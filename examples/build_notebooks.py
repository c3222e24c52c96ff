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


builder = StateGraph(MessagesState)
builder.add_node("chat", chat)
builder.add_edge(START, "chat")
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


NOTEBOOKS = {
    "01_checkpointed_chat.ipynb": checkpointed_chat,
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
