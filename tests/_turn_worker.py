"""A fresh process that runs one turn of the echo graph: ``python _turn_worker.py URL THREAD
TEXT`` (the mirror tests use it to show that nothing depends on one process's memory)."""

from __future__ import annotations

import sys
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from langgraph_pgstore import Database


def echo_graph() -> StateGraph:
    def reply(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"echo {state['messages'][-1].text}")]}

    g = StateGraph(MessagesState)
    g.add_node("reply", reply)
    g.add_edge(START, "reply")
    return g


def turn(db: Database, thread: str, text: str) -> None:
    graph = echo_graph().compile(checkpointer=db.checkpointer)
    graph.invoke({"messages": [HumanMessage(text)]}, {"configurable": {"thread_id": thread}})


if __name__ == "__main__":
    url, thread, text = sys.argv[1:4]
    with Database.connect(url, max_size=2) as database:
        turn(database, thread, text)
