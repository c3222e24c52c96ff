"""Telemetry records what a graph really did: one test per way of running a graph.

Each test runs a small graph with the telemetry handler attached, flushes the writer and compares
the recorded run/steps/llm_calls (read back from PostgreSQL) with what happened.
"""

from __future__ import annotations

import asyncio
import operator
import uuid
from decimal import Decimal
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, RetryPolicy, Send, interrupt
from test_telemetry_fakes import UsageChatModel

from langgraph_pgstore import AsyncDatabase, Database, InvalidInput, NotFound
from langgraph_pgstore.telemetry import disable, enable


class S(TypedDict):
    x: Annotated[list[Any], operator.add]


LLM = UsageChatModel()


def llm_node(state: S) -> dict[str, Any]:
    reply = LLM.invoke("question")
    return {"x": [reply.content]}


async def allm_node(state: S) -> dict[str, Any]:
    reply = await LLM.ainvoke("question")
    return {"x": [reply.content]}


def chain(*nodes: tuple[str, Any], name: str = "g") -> Any:
    g = StateGraph(S)
    prev = START
    for node_name, fn in nodes:
        g.add_node(node_name, fn)
        g.add_edge(prev, node_name)
        prev = node_name
    return g.compile(name=name)


def recorded(db: Database, run_id: uuid.UUID) -> dict[str, Any]:
    assert db.telemetry.flush(10)
    return dict(db.telemetry.get_run(run_id))


def cfg(**extra: Any) -> dict[str, Any]:
    return {"run_id": uuid.uuid4(), **extra}


def nodes(detail: dict[str, Any], kind: str = "node") -> list[tuple[str, int, str]]:
    return [
        (s["node_name"], s["step_number"], s["status"])
        for s in detail["steps"]
        if s["kind"] == kind
    ]


# --- ways of running ---------------------------------------------------------------------------


def test_invoke_records_run_steps_and_llm_call(db: Database) -> None:
    graph = db.telemetry.instrument(
        chain(("a", llm_node), ("b", lambda s: {"x": ["b"]})), capture="full"
    )
    config = cfg(
        metadata={"user_id": "u1", "idempotency_key": "k1"}, configurable={"thread_id": "t1"}
    )
    out = graph.invoke({"x": []}, config)
    assert out == {"x": ["hello there", "b"]}
    d = recorded(db, config["run_id"])
    run = d["run"]
    assert (run["graph_name"], run["status"], run["user_id"], run["thread_id"]) == (
        "g",
        "success",
        "u1",
        "t1",
    )
    assert run["idempotency_key"] == "k1"
    assert run["output_summary"] == {"x": ["hello there", "b"]}
    assert run["completed_at"] >= run["started_at"]
    assert nodes(d) == [("a", 1, "success"), ("b", 2, "success")]
    a, b = d["steps"]
    assert b["output_data"] == {"x": ["b"]}
    assert a["output_data"] == {"x": ["hello there"]} and a["input_data"] == {"x": []}
    assert a["triggers"] == ["branch:to:a"] and a["checkpoint_ns"].startswith("a:")
    assert a["attempt"] == 1 and a["task_id"] == a["checkpoint_ns"].split(":", 1)[1]
    [call] = d["llm_calls"]
    assert call["step_id"] == a["id"] and call["thread_id"] == "t1"
    assert (call["request_model"], call["response_model"], call["provider_name"]) == (
        "gpt-4o-mini",
        "gpt-4o-mini",
        "openai",
    )
    assert (call["input_tokens"], call["output_tokens"], call["total_tokens"]) == (100, 20, 120)
    # gpt-4o-mini: $0.15/M input, $0.60/M output
    assert call["cost_usd"] == Decimal("0.000027")
    assert call["finish_reasons"] == ["stop"] and call["response_id"] == "resp-1"
    assert call["streamed"] is False and call["time_to_first_chunk_ms"] is None
    assert call["latency_ms"] > 0 and call["status"] == "success"
    assert db.telemetry.handler.open_entries == 0 and db.telemetry.handler.open_runs == 0


async def test_ainvoke_and_async_query_api(adb: AsyncDatabase) -> None:
    graph = adb.telemetry.instrument(chain(("a", allm_node), ("b", allm_node)))
    config = cfg(metadata={"user_id": "u2"})
    await graph.ainvoke({"x": []}, config)
    assert await adb.telemetry.aflush(10)
    d = await adb.telemetry.aget_run(config["run_id"])
    assert d["run"]["status"] == "success" and d["run"]["user_id"] == "u2"
    assert nodes(d) == [("a", 1, "success"), ("b", 2, "success")]  # type: ignore[arg-type]
    assert [c["step_id"] for c in d["llm_calls"]] == [s["id"] for s in d["steps"]]
    stats = await adb.telemetry.arun_stats(config["run_id"])
    assert (stats["step_count"], stats["llm_calls"], stats["total_tokens"]) == (2, 2, 240)
    assert stats["cost_usd"] == Decimal("0.000054")
    page = await adb.telemetry.alist_runs(user_id="u2")
    assert [r["id"] for r in page["items"]] == [config["run_id"]]
    by_user = await adb.telemetry.astats("user")
    assert [(r["key"], r["runs"], r["llm_calls"]) for r in by_user] == [("u2", 1, 2)]


@pytest.mark.parametrize("mode", ["values", "updates", "messages", "custom", "debug"])
def test_stream_every_mode(db: Database, mode: str) -> None:
    graph = db.telemetry.instrument(chain(("a", llm_node), ("b", llm_node)))
    config = cfg()
    chunks = list(graph.stream({"x": []}, config, stream_mode=mode))
    if mode != "custom":
        assert chunks
    d = recorded(db, config["run_id"])
    assert d["run"]["status"] == "success"
    assert nodes(d) == [("a", 1, "success"), ("b", 2, "success")]
    assert len(d["llm_calls"]) == 2
    for call in d["llm_calls"]:
        assert call["total_tokens"] == 120 and call["status"] == "success"
        # stream_mode="messages" turns llm.invoke into streaming: TTFT is then known
        assert call["streamed"] is (mode == "messages")
        assert (call["time_to_first_chunk_ms"] is not None) is (mode == "messages")
        if mode == "messages":
            assert 0 <= call["time_to_first_chunk_ms"] <= call["latency_ms"]


@pytest.mark.parametrize("mode", ["values", "updates", "messages"])
async def test_astream(adb: AsyncDatabase, mode: str) -> None:
    graph = adb.telemetry.instrument(chain(("a", allm_node)))
    config = cfg()
    assert [c async for c in graph.astream({"x": []}, config, stream_mode=mode)]
    assert await adb.telemetry.aflush(10)
    d = await adb.telemetry.aget_run(config["run_id"])
    assert d["run"]["status"] == "success"
    [call] = d["llm_calls"]
    assert call["streamed"] is (mode == "messages") and call["output_tokens"] == 20


def test_stream_stopped_early_is_cancelled(db: Database) -> None:
    graph = db.telemetry.instrument(chain(("a", llm_node), ("b", llm_node), ("c", llm_node)))
    config = cfg()
    it = graph.stream({"x": []}, config, stream_mode="updates")
    next(it)
    it.close()  # the caller stops iterating: GeneratorExit reaches the root run
    d = recorded(db, config["run_id"])
    assert d["run"]["status"] == "cancelled" and d["run"]["error_type"] == "GeneratorExit"
    assert nodes(d)[0] == ("a", 1, "success")
    assert all(s["status"] != "running" for s in d["steps"])


def test_batch_records_one_run_per_input(db: Database) -> None:
    graph = db.telemetry.instrument(chain(("a", llm_node)), capture="full")
    configs = [cfg(metadata={"user_id": f"u{i}"}) for i in range(3)]
    graph.batch([{"x": [i]} for i in range(3)], configs)
    for i, config in enumerate(configs):
        d = recorded(db, config["run_id"])
        assert d["run"]["user_id"] == f"u{i}" and d["run"]["input_summary"] == {"x": [i]}
        assert len(d["steps"]) == 1 and len(d["llm_calls"]) == 1
    assert db.telemetry.list_runs()["items"].__len__() == 3


def test_fan_out_parallel_branches_share_a_step(db: Database) -> None:
    g = StateGraph(S)
    g.add_node("start", lambda s: {"x": ["s"]})
    for name in ("p1", "p2", "p3"):
        g.add_node(name, llm_node)
        g.add_edge("start", name)
        g.add_edge(name, "join")
    g.add_node("join", lambda s: {"x": ["j"]})
    g.add_edge(START, "start")
    graph = db.telemetry.instrument(g.compile())
    config = cfg()
    graph.invoke({"x": []}, config)
    d = recorded(db, config["run_id"])
    assert sorted(nodes(d)) == [
        ("join", 3, "success"),
        ("p1", 2, "success"),
        ("p2", 2, "success"),
        ("p3", 2, "success"),
        ("start", 1, "success"),
    ]
    by_id = {s["id"]: s["node_name"] for s in d["steps"]}
    assert sorted(by_id[c["step_id"]] for c in d["llm_calls"]) == ["p1", "p2", "p3"]
    assert len({s["checkpoint_ns"] for s in d["steps"]}) == 5


def test_send_workers_are_told_apart(db: Database) -> None:
    g = StateGraph(S)
    g.add_node("plan", lambda s: {"x": ["p"]})
    g.add_node("work", llm_node)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", lambda s: [Send("work", {"x": [i]}) for i in range(4)])
    g.add_edge("work", END)
    graph = db.telemetry.instrument(g.compile())
    config = cfg()
    graph.invoke({"x": []}, config)
    d = recorded(db, config["run_id"])
    workers = [s for s in d["steps"] if s["node_name"] == "work"]
    assert len(workers) == 4
    assert {w["step_number"] for w in workers} == {2}
    assert all(w["triggers"] == ["__pregel_push"] for w in workers)
    assert len({w["checkpoint_ns"] for w in workers}) == 4
    assert sorted(c["step_id"] for c in d["llm_calls"]) == sorted(w["id"] for w in workers)
    # the router is a hidden run, not a step
    assert sorted(s["node_name"] for s in d["steps"]) == ["plan", "work", "work", "work", "work"]


def test_subgraph_steps_nest_under_the_parent_node(db: Database) -> None:
    inner = chain(("i1", llm_node), ("i2", lambda s: {"x": ["i2"]}), name="inner")
    graph = db.telemetry.instrument(chain(("outer", inner), ("after", llm_node), name="outer_g"))
    config = cfg()
    graph.invoke({"x": []}, config)
    d = recorded(db, config["run_id"])
    by_name = {s["node_name"]: s for s in d["steps"]}
    assert set(by_name) == {"outer", "i1", "i2", "after"}
    assert by_name["i1"]["parent_step_id"] == by_name["outer"]["id"]
    assert by_name["i2"]["parent_step_id"] == by_name["outer"]["id"]
    assert by_name["outer"]["parent_step_id"] is None
    assert by_name["i1"]["checkpoint_ns"].startswith(by_name["outer"]["checkpoint_ns"] + "|i1:")
    assert (by_name["i1"]["step_number"], by_name["i2"]["step_number"]) == (1, 2)
    steps_of_calls = sorted(by_name_id(d)[c["step_id"]] for c in d["llm_calls"])
    assert steps_of_calls == ["after", "i1"]
    assert len(db.telemetry.list_runs()["items"]) == 1  # the subgraph is not a run of its own


def by_name_id(d: dict[str, Any]) -> dict[Any, str]:
    return {s["id"]: s["node_name"] for s in d["steps"]}


def test_interrupt_then_resume_is_a_new_run(db: Database) -> None:
    def ask(state: S) -> dict[str, Any]:
        answer = interrupt("approve?")
        return {"x": [answer]}

    g = StateGraph(S)
    g.add_node("prep", llm_node)
    g.add_node("ask", ask)
    g.add_edge(START, "prep")
    g.add_edge("prep", "ask")
    graph = db.telemetry.instrument(g.compile(checkpointer=InMemorySaver()), capture="full")
    first = cfg(configurable={"thread_id": "th"}, metadata={"user_id": "u"})
    out = graph.invoke({"x": []}, first)
    assert "__interrupt__" in out
    d1 = recorded(db, first["run_id"])
    assert d1["run"]["status"] == "interrupted"
    assert nodes(d1) == [("prep", 1, "success"), ("ask", 2, "interrupted")]
    assert "approve?" in str(d1["steps"][1]["output_data"])
    second = cfg(configurable={"thread_id": "th"}, metadata={"user_id": "u"})
    assert graph.invoke(Command(resume="yes"), second)["x"][-1] == "yes"
    d2 = recorded(db, second["run_id"])
    assert d2["run"]["status"] == "success" and d2["run"]["metadata"]["resume"] is True
    assert nodes(d2) == [("ask", 2, "success")]  # only the interrupted node runs again
    assert d2["llm_calls"] == []
    sessions = db.telemetry.stats("session")
    assert [(r["key"], r["runs"], r["llm_calls"]) for r in sessions] == [("th", 2, 1)]


def test_retries_are_attempts_of_one_step(db: Database) -> None:
    calls = {"n": 0}

    def flaky(state: S) -> dict[str, Any]:
        calls["n"] += 1
        LLM.invoke("q")
        if calls["n"] < 3:
            raise ValueError(f"boom {calls['n']}")
        return {"x": ["ok"]}

    g = StateGraph(S)
    g.add_node(
        "flaky",
        flaky,
        retry_policy=RetryPolicy(
            max_attempts=3, initial_interval=0.01, retry_on=ValueError, jitter=False
        ),
    )
    g.add_edge(START, "flaky")
    graph = db.telemetry.instrument(g.compile(), capture="full")
    config = cfg()
    graph.invoke({"x": []}, config)
    d = recorded(db, config["run_id"])
    assert d["run"]["status"] == "success"
    steps = d["steps"]
    assert [(s["attempt"], s["status"], s["error_type"]) for s in steps] == [
        (1, "error", "ValueError"),
        (2, "error", "ValueError"),
        (3, "success", None),
    ]
    assert steps[0]["error_message"] == "boom 1"
    assert len({s["checkpoint_ns"] for s in steps}) == 1
    assert len({s["id"] for s in steps}) == 3
    assert sorted(c["step_id"] for c in d["llm_calls"]) == sorted(s["id"] for s in steps)


def test_error_marks_step_and_run(db: Database) -> None:
    def bad(state: S) -> dict[str, Any]:
        LLM.invoke("q")
        raise RuntimeError("it broke")

    graph = db.telemetry.instrument(chain(("ok", llm_node), ("bad", bad)), capture="full")
    config = cfg()
    with pytest.raises(RuntimeError, match="it broke"):
        graph.invoke({"x": []}, config)
    d = recorded(db, config["run_id"])
    assert (d["run"]["status"], d["run"]["error_type"], d["run"]["error_message"]) == (
        "error",
        "RuntimeError",
        "it broke",
    )
    assert nodes(d) == [("ok", 1, "success"), ("bad", 2, "error")]
    assert [c["status"] for c in d["llm_calls"]] == ["success", "success"]
    assert db.telemetry.run_stats(config["run_id"])["step_count"] == 2


async def test_cancellation_during_llm_call(adb: AsyncDatabase) -> None:
    slow = UsageChatModel(delay=2.0)
    started = asyncio.Event()

    async def waits(state: S) -> dict[str, Any]:
        started.set()
        await slow.ainvoke("q")
        return {"x": ["never"]}

    graph = adb.telemetry.instrument(chain(("fast", allm_node), ("slow", waits)))
    config = cfg()
    task = asyncio.create_task(graph.ainvoke({"x": []}, config))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.1)  # inside the slow LLM call
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await adb.telemetry.aflush(10)
    d = await adb.telemetry.aget_run(config["run_id"])
    assert d["run"]["status"] == "cancelled"
    assert nodes(d) == [("fast", 1, "success"), ("slow", 2, "cancelled")]  # type: ignore[arg-type]
    # the cancelled LLM call never reports an end: closed with the run
    assert [c["status"] for c in d["llm_calls"]] == ["success", "cancelled"]
    assert all(c["completed_at"] is not None for c in d["llm_calls"])
    assert adb.telemetry.handler.open_entries == 0


async def test_node_timeout(adb: AsyncDatabase) -> None:
    slow = UsageChatModel(delay=2.0)

    async def waits(state: S) -> dict[str, Any]:
        await slow.ainvoke("q")
        return {"x": ["never"]}

    g = StateGraph(S)
    g.add_node("slow", waits, timeout=0.2)
    g.add_edge(START, "slow")
    graph = adb.telemetry.instrument(g.compile())
    config = cfg()
    with pytest.raises(Exception) as info:
        await graph.ainvoke({"x": []}, config)
    assert type(info.value).__name__ == "NodeTimeoutError"
    assert await adb.telemetry.aflush(10)
    d = await adb.telemetry.aget_run(config["run_id"])
    assert (d["run"]["status"], d["run"]["error_type"]) == ("error", "NodeTimeoutError")
    [step] = d["steps"]
    assert step["status"] in ("error", "cancelled") and step["completed_at"] is not None
    [call] = d["llm_calls"]
    assert call["status"] != "running" and call["completed_at"] is not None
    assert adb.telemetry.handler.open_entries == 0


def test_tool_calls_are_steps_of_kind_tool(db: Database) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    def use_tool(state: S) -> dict[str, Any]:
        return {"x": [add.invoke({"a": 2, "b": 3})]}

    graph = db.telemetry.instrument(chain(("agent", use_tool)), capture="full")
    config = cfg()
    graph.invoke({"x": []}, config)
    d = recorded(db, config["run_id"])
    [node] = [s for s in d["steps"] if s["kind"] == "node"]
    [t] = [s for s in d["steps"] if s["kind"] == "tool"]
    assert (t["node_name"], t["status"], t["parent_step_id"]) == ("add", "success", node["id"])
    assert t["output_data"] == 5
    assert db.telemetry.run_stats(config["run_id"])["tool_calls"] == 1


def test_tokens_cache_reasoning_and_unknown_cost(db: Database) -> None:
    cached = UsageChatModel(
        model="gpt-4o", input_tokens=1000, output_tokens=100, cache_read=200, reasoning=30
    )
    unknown = UsageChatModel(model="no-such-model-xyz")
    no_usage = UsageChatModel(with_usage=False)

    def node(state: S) -> dict[str, Any]:
        cached.invoke("a")
        unknown.invoke("b")
        no_usage.invoke("c")
        return {"x": [1]}

    graph = db.telemetry.instrument(chain(("n", node)))
    config = cfg()
    graph.invoke({"x": []}, config)
    d = recorded(db, config["run_id"])
    c1, c2, c3 = d["llm_calls"]
    assert (c1["cache_read_input_tokens"], c1["reasoning_output_tokens"]) == (200, 30)
    # gpt-4o: 800 * 2.5/M + 200 * 1.25/M + 100 * 10/M
    assert c1["cost_usd"] == Decimal("0.00325")
    assert c2["request_model"] == "no-such-model-xyz" and c2["input_tokens"] == 100
    assert c2["cost_usd"] is None  # unknown model: NULL, not 0
    assert c3["input_tokens"] is None and c3["cost_usd"] is None  # unknown usage: NULL
    stats = db.telemetry.run_stats(config["run_id"])
    assert stats["cost_usd"] == Decimal("0.00325") and stats["cost_unknown_calls"] == 2


def test_full_capture_stores_inputs_truncated(db: Database) -> None:
    db.telemetry.writer.max_json_chars = 50
    graph = db.telemetry.instrument(chain(("a", lambda s: {"x": ["y" * 100]})), capture="full")
    config = cfg()
    graph.invoke({"x": ["small"]}, config)
    d = recorded(db, config["run_id"])
    [step] = d["steps"]
    assert step["input_data"] == {"x": ["small"]}
    assert step["output_data"]["__truncated__"] is True
    assert len(step["output_data"]["preview"]) == 50


def test_command_output_and_odd_values_are_serialised(db: Database) -> None:
    def go(state: S) -> Command[Any]:
        return Command(update={"x": [{1, 2}, b"raw", uuid.UUID(int=0)]}, goto="end")

    g = StateGraph(S)
    g.add_node("go", go)
    g.add_node("end", lambda s: {"x": ["\x00nul"]})
    g.add_edge(START, "go")
    graph = db.telemetry.instrument(g.compile(), capture="full")
    config = cfg()
    graph.invoke({"x": []}, config)
    d = recorded(db, config["run_id"])
    assert nodes(d) == [("go", 1, "success"), ("end", 2, "success")]
    out = d["steps"][0]["output_data"]
    assert out["__type__"] == "Command" and out["goto"] == "end"
    assert out["update"]["x"] == [[1, 2], "<3 bytes>", str(uuid.UUID(int=0))]
    assert d["steps"][1]["output_data"] == {"x": ["nul"]}


def test_enable_records_every_graph_in_the_process(db: Database) -> None:
    graph = chain(("a", llm_node))  # not instrumented
    config = cfg()
    enable(db)
    try:
        graph.invoke({"x": []}, config)
        LLM.invoke("outside any graph: not recorded")
    finally:
        disable()
    other = cfg()
    graph.invoke({"x": []}, other)
    assert db.telemetry.flush(10)
    assert db.telemetry.get_run(config["run_id"])["llm_calls"][0]["total_tokens"] == 120
    with pytest.raises(NotFound):
        db.telemetry.get_run(other["run_id"])
    with pytest.raises(InvalidInput):
        enable(object())


def test_idempotency_key_reused_is_not_a_failure(db: Database) -> None:
    graph = db.telemetry.instrument(chain(("a", lambda s: {"x": [1]})))
    c1, c2 = cfg(metadata={"idempotency_key": "same"}), cfg(metadata={"idempotency_key": "same"})
    graph.invoke({"x": []}, c1)
    graph.invoke({"x": []}, c2)
    r1, r2 = recorded(db, c1["run_id"])["run"], recorded(db, c2["run_id"])["run"]
    assert (r1["idempotency_key"], r2["idempotency_key"]) == ("same", None)
    assert r2["status"] == "success" and db.telemetry.rejected_events == 0
