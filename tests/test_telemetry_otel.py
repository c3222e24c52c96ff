"""OpenTelemetry export: the span tree of a run equals its recorded rows (in-memory exporter)."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_telemetry_fakes import UsageChatModel

from langgraph_pgstore import Database


class S(TypedDict):
    x: Annotated[list[Any], operator.add]


LLM = UsageChatModel()


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def graph_with_everything() -> Any:
    """plan -> (sub: i1 -> i2) -> act (LLM + tool) -> fail on demand; fan-out of two workers."""

    def llm(state: S) -> dict[str, Any]:
        LLM.invoke("q")
        return {"x": [1]}

    def act(state: S) -> dict[str, Any]:
        LLM.invoke("q")
        return {"x": [add.invoke({"a": 1, "b": 2})]}

    inner = StateGraph(S)
    inner.add_node("i1", llm)
    inner.add_node("i2", lambda s: {"x": [2]})
    inner.add_edge(START, "i1")
    inner.add_edge("i1", "i2")
    g = StateGraph(S)
    g.add_node("plan", llm)
    g.add_node("sub", inner.compile(name="inner"))
    g.add_node("w1", llm)
    g.add_node("w2", llm)
    g.add_node("act", act)
    g.add_edge(START, "plan")
    g.add_edge("plan", "sub")
    g.add_edge("sub", "w1")
    g.add_edge("sub", "w2")
    g.add_edge("w1", "act")
    g.add_edge("w2", "act")
    return g.compile(name="everything")


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_span_tree_equals_recorded_rows(
    db: Database, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    graph = db.telemetry.instrument(graph_with_everything(), tracer_provider=provider)
    outer = provider.get_tracer("app").start_span("http request")
    run_id = uuid.uuid4()
    with trace.use_span(outer, end_on_exit=True):
        graph.invoke(
            {"x": []},
            {"run_id": run_id, "configurable": {"thread_id": "t"}, "metadata": {"user_id": "u"}},
        )
    assert db.telemetry.flush(10)
    d = db.telemetry.get_run(run_id)
    finished: list[ReadableSpan] = list(exporter.get_finished_spans())
    by_row: dict[str, ReadableSpan] = {}
    for s in finished:
        attrs = s.attributes or {}
        for key in ("pgstore.run_id", "pgstore.step_id", "pgstore.llm_call_id"):
            if key in attrs:
                by_row[str(attrs[key])] = s
    root = by_row[str(run_id)]
    assert root.name == "invoke_workflow everything"
    assert root.parent is not None and root.parent.span_id == outer.get_span_context().span_id
    assert (root.attributes or {})["gen_ai.conversation.id"] == "t"
    assert (root.attributes or {})["user.id"] == "u"
    # one span per row, nothing more (besides the caller's own span)
    rows = (
        [str(run_id)] + [str(s["id"]) for s in d["steps"]] + [str(c["id"]) for c in d["llm_calls"]]
    )
    assert sorted(by_row) == sorted(rows) and len(finished) == len(rows) + 1

    def parent_of(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None
        [p] = [s for s in finished if s.context.span_id == span.parent.span_id]
        return p

    for step in d["steps"]:
        span = by_row[str(step["id"])]
        want = step["parent_step_id"] or run_id
        assert parent_of(span) is by_row[str(want)], step["node_name"]
        assert abs(span.start_time - step["started_at"].timestamp() * 1e9) < 2_000  # ns
        if step["kind"] == "tool":
            assert span.name == "execute_tool add"
            assert (span.attributes or {})["gen_ai.tool.name"] == "add"
        else:
            assert span.name == step["node_name"]
    for call in d["llm_calls"]:
        span = by_row[str(call["id"])]
        assert parent_of(span) is by_row[str(call["step_id"])]
        attrs = span.attributes or {}
        assert span.name == "chat gpt-4o-mini"
        assert attrs["gen_ai.request.model"] == call["request_model"]
        assert attrs["gen_ai.response.model"] == call["response_model"]
        assert attrs["gen_ai.provider.name"] == call["provider_name"] == "openai"
        assert attrs["gen_ai.usage.input_tokens"] == call["input_tokens"] == 100
        assert attrs["gen_ai.usage.output_tokens"] == call["output_tokens"] == 20
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
        assert attrs["pgstore.cost_usd"] == float(call["cost_usd"])
    names = sorted(s["node_name"] for s in d["steps"])
    assert names == ["act", "add", "i1", "i2", "plan", "sub", "w1", "w2"]
    assert len(d["llm_calls"]) == 5
    assert db.telemetry._exporter.open_runs == 0


def test_errors_mark_spans_and_orphans_end_with_the_run(
    db: Database, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans

    def boom(state: S) -> dict[str, Any]:
        LLM.invoke("q")
        raise RuntimeError("no")

    g = StateGraph(S)
    g.add_node("boom", boom)
    g.add_edge(START, "boom")
    graph = db.telemetry.instrument(g.compile(name="fails"), tracer_provider=provider)
    with pytest.raises(RuntimeError):
        graph.invoke({"x": []})
    assert db.telemetry.flush(10)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    assert set(by_name) == {"invoke_workflow fails", "boom", "chat gpt-4o-mini"}
    for name in ("invoke_workflow fails", "boom"):
        assert by_name[name].status.status_code == trace.StatusCode.ERROR
        assert (by_name[name].attributes or {})["error.type"] == "RuntimeError"
    assert by_name["chat gpt-4o-mini"].status.status_code == trace.StatusCode.UNSET


def test_graphs_without_otel_export_nothing(
    db: Database, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    exported = db.telemetry.instrument(graph_with_everything(), tracer_provider=provider)
    plain = db.telemetry.instrument(graph_with_everything())
    plain.invoke({"x": []})
    exported.invoke({"x": []})
    assert db.telemetry.flush(10)
    runs = {
        str(s.attributes.get("pgstore.run_id"))
        for s in exporter.get_finished_spans()
        if s.attributes and "pgstore.run_id" in s.attributes
    }
    assert len(runs) == 1
    assert len(db.telemetry.list_runs()["items"]) == 2


def test_runs_whose_end_was_lost_do_not_pile_up(
    monkeypatch: pytest.MonkeyPatch, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    from langgraph_pgstore.telemetry import otel
    from langgraph_pgstore.telemetry.events import RunStart

    provider, exporter = spans
    monkeypatch.setattr(otel, "MAX_OPEN_RUNS", 3)
    exp = otel.SpanExporter()
    tracer = exp.tracer(provider)
    for _ in range(5):  # starts only: their ends were lost
        exp.on_event(RunStart(uuid.uuid4(), "g", None, {}, None, False, 1.0, (tracer, None)))
    assert exp.open_runs == 3
    ended = exporter.get_finished_spans()
    assert len(ended) == 2 and all(
        (s.attributes or {})["pgstore.status"] == "unknown" for s in ended
    )
