"""``telemetry.trace``: the span tree and the timeline lanes every view draws (pure)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from langgraph_pgstore.telemetry.trace import build_trace, timeline
from langgraph_pgstore.ui.views import fit, fmt_ms, fmt_usd, nice_step, timeline_svg

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def step(name: str, start: float, end: float | None, parent: Any = None, **kw: Any) -> dict:
    return {
        "id": uuid.uuid4(), "node_name": name, "kind": kw.pop("kind", "node"),
        "parent_step_id": parent, "started_at": at(start), "status": "success",
        "completed_at": None if end is None else at(end), **kw,
    }  # fmt: skip


def call(step_row: dict | None, start: float, end: float, cost: str | None, **kw: Any) -> dict:
    return {"id": uuid.uuid4(), "step_id": step_row["id"] if step_row else None,
            "request_model": "gpt-4o-mini", "response_model": kw.pop("model", None),
            "input_tokens": 10, "output_tokens": 5, "total_tokens": 15, "status": "success",
            "cost_usd": None if cost is None else Decimal(cost), "latency_ms": end - start,
            "started_at": at(start), "completed_at": at(end), **kw}  # fmt: skip


RUN = {"id": uuid.uuid4(), "graph_name": "research", "status": "success",
       "started_at": T0, "completed_at": at(100)}  # fmt: skip


def fan_out() -> tuple[list[dict], list[dict]]:
    """plan, then three research workers in parallel (each a tool and an LLM call), write."""
    plan = step("plan", 0, 10)
    workers = [step("research", 12 + i, 60 + i) for i in range(3)]
    tools = [
        step("search_docs", 15 + i, 20 + i, w["id"], kind="tool") for i, w in enumerate(workers)
    ]
    write = step("write", 65, 95)
    calls = [call(plan, 2, 8, "0.001")]
    calls += [call(w, 25 + i, 55 + i, "0.002") for i, w in enumerate(workers)]
    calls.append(call(write, 70, 90, None, model="gpt-4o-2024-08-06"))
    # Rows arrive as get_run orders them: by start time.
    steps = sorted([plan, *workers, *tools, write], key=lambda r: r["started_at"])
    return steps, sorted(calls, key=lambda r: r["started_at"])


def test_tree_nests_orders_and_sums() -> None:
    steps, calls = fan_out()
    root = build_trace(RUN, steps, calls)
    assert root.kind == "run" and root.name == "research"
    assert [c.name for c in root.children] == ["plan", "research", "research", "research", "write"]
    worker = root.children[1]
    assert [(c.kind, c.name) for c in worker.children] == [
        ("tool", "search_docs"), ("llm", "gpt-4o-mini")
    ]  # fmt: skip
    assert worker.llm_calls == 1 and worker.cost_usd == Decimal("0.002")
    write = root.children[-1]
    assert write.children[0].name == "gpt-4o-2024-08-06"  # the answering model wins
    assert write.unpriced_calls == 1 and write.cost_usd == 0
    assert root.llm_calls == 5 and root.input_tokens == 50 and root.total_tokens == 75
    assert root.cost_usd == Decimal("0.007") and root.unpriced_calls == 1
    assert [d for d, _ in root.walk()][:6] == [0, 1, 2, 1, 2, 2]


def test_orphans_stay_under_the_root() -> None:
    lost_parent = step("sub", 5, 6, parent=uuid.uuid4())
    root = build_trace(RUN, [lost_parent], [call(None, 1, 2, "0.5")])
    assert [c.name for c in root.children] == ["gpt-4o-mini", "sub"]
    assert root.cost_usd == Decimal("0.5")


def test_parallel_branches_get_lanes_of_their_own() -> None:
    steps, calls = fan_out()
    tl = timeline(build_trace(RUN, steps, calls))
    assert [lane.label for lane in tl.lanes] == ["plan, research, write", "research", "research"]
    # Lane 0: node row, then one row for the callees (tool and LLM call do not overlap).
    assert (tl.lanes[0].first_row, tl.lanes[0].rows) == (0, 2)
    assert tl.rows == 6 and tl.total_ms == 100
    by_name = {(b.span.name, b.lane) for b in tl.bars if b.depth == 0}
    assert by_name == {("plan", 0), ("research", 0), ("write", 0), ("research", 1), ("research", 2)}
    assert all(b.end_ms >= b.start_ms for b in tl.bars)


def test_overlapping_callees_of_one_node_get_rows_of_their_own() -> None:
    node = step("agent", 0, 50)
    calls = [call(node, 5, 40, "0.1"), call(node, 10, 30, "0.1")]  # two concurrent LLM calls
    tl = timeline(build_trace(RUN, [node], calls))
    assert sorted(b.row for b in tl.bars if b.depth == 1) == [1, 2]
    assert tl.rows == 3


def test_a_span_still_running_extends_to_the_latest_time() -> None:
    done = step("plan", 0, 40)
    running = step("research", 10, None)
    run = {**RUN, "status": "running", "completed_at": None}
    tl = timeline(build_trace(run, [done, running], []))
    [bar] = [b for b in tl.bars if b.span.name == "research"]
    assert bar.end_ms == 40 and bar.span.duration_ms is None


def test_svg_geometry_and_formats() -> None:
    steps, calls = fan_out()
    svg = timeline_svg(timeline(build_trace(RUN, steps, calls)), width=1000)
    xs = [b.x for b in svg.bars]
    assert min(xs) >= svg.label_w and max(b.x + b.w for b in svg.bars) <= svg.width
    assert [t[1] for t in svg.ticks][:3] == ["0 ms", "20 ms", "40 ms"]
    failed = build_trace({**RUN, "status": "error"}, [step("x", 0, 1, status="error",
                         error_type="ValueError", error_message="boom")], [])  # fmt: skip
    assert failed.children[0].failed
    assert fmt_usd(Decimal("0.000027")) == "$0.000027" and fmt_usd(12.3) == "$12.30"
    assert fmt_usd(None) == "\N{EN DASH}" and fmt_usd(0) == "$0"
    assert fmt_ms(1234.56) == "1,234.6 ms" and fmt_ms(12_500) == "12.50 s"
    assert nice_step(100) == 20 and nice_step(7) == 2
    assert fit("research", 200) == "research" and fit("research", 40) == "res…"
    assert fit("research", 10) == ""
