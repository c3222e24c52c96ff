"""Child process for the durability test: runs chat graphs until SIGKILLed.

Usage: python _durability_worker.py URL THREADS. Prints ``ready`` once some checkpoints are
committed, then keeps writing until the parent kills it.
"""

from __future__ import annotations

import sys
import threading
import time
from itertools import count

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from langgraph_pgstore import Database


def main(url: str, threads: int) -> None:
    g = StateGraph(MessagesState)
    g.add_node("think", lambda s: {"messages": [AIMessage(f"thinking {len(s['messages'])}")]})
    g.add_node("answer", lambda s: {"messages": [AIMessage(f"answer {len(s['messages'])}")]})
    g.add_edge(START, "think")
    g.add_edge("think", "answer")
    done = count()
    with Database.connect(url, max_size=threads) as db:
        graph = g.compile(checkpointer=db.checkpointer)

        def loop(i: int) -> None:
            cfg = {"configurable": {"thread_id": f"dur{i}"}}
            for n in range(10_000):
                graph.invoke({"messages": [HumanMessage(f"hello {n} " + "x" * 2000)]}, cfg)
                next(done)

        for i in range(threads):
            threading.Thread(target=loop, args=(i,), daemon=True).start()
        while next(done) < threads * 2:
            time.sleep(0.01)
        print("ready", flush=True)
        time.sleep(60)  # the parent kills us long before


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
