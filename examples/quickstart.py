"""Quickstart: a checkpointed chat that survives a process restart.

Run it with ``scripts/demo`` (or ``python examples/quickstart.py``). With no DATABASE_URL it
starts the embedded PostgreSQL. The first process says hello; a second, separate process
opens the same thread and carries on: the conversation came back from PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import START, MessagesState, StateGraph

import langgraph_pgstore


class EchoModel(BaseChatModel):
    """A fake chat model (no API key): it remembers how many turns it has seen."""

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **_: Any) -> ChatResult:
        said = [m.content for m in messages if isinstance(m, HumanMessage)]
        reply = f"You said {said[-1]!r}. This is turn {len(said)}; before: {said[:-1]}"
        tokens = sum(len(str(m.content).split()) for m in messages)
        message = AIMessage(
            reply,
            usage_metadata={
                "input_tokens": tokens,
                "output_tokens": 12,
                "total_tokens": tokens + 12,
            },
            response_metadata={"model_name": "echo-1"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def build_graph(db: langgraph_pgstore.Database) -> Any:
    model = EchoModel()

    def chat(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder.compile(checkpointer=db.checkpointer)


def turn(thread_id: str, text: str) -> None:
    with langgraph_pgstore.connect() as db:
        print(f"[pid {__import__('os').getpid()}] database: {db.redacted_url}")
        graph = build_graph(db)
        config = {"configurable": {"thread_id": thread_id}, "metadata": {"user_id": "demo-user"}}
        state = graph.invoke({"messages": [HumanMessage(text)]}, config)
        for message in state["messages"]:
            print(f"  {message.type:>5}: {message.content}")
        history = list(graph.get_state_history(config))
        print(f"  ({len(history)} checkpoints stored for thread {thread_id})")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--resume":
        turn(sys.argv[2], "Do you remember me?")
        return
    thread_id = f"quickstart-{uuid.uuid4().hex[:8]}"
    print("Process 1: first turn")
    turn(thread_id, "Hello, I am Ada.")
    print("Process 2: a new Python process resumes the same thread")
    subprocess.run([sys.executable, __file__, "--resume", thread_id], check=True)


if __name__ == "__main__":
    main()
