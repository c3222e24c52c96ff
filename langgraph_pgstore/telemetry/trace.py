"""A recorded run as a tree of spans, and a lane layout of it for timelines.

Pure functions over ``get_run``'s rows (no I/O), shared by the CLI (``runs show --tree``), the
web UI and notebook 03, so every view nests and orders the same way:

* the run is the root; a step hangs under ``parent_step_id`` (tools under the node that called
  them, subgraph nodes under their parent node), an LLM call under its ``step_id``; a parent
  that was never recorded puts the child under the root rather than losing it;
* siblings are in start order;
* a span that is not an LLM call carries the totals of the LLM calls beneath it, so "where did
  the tokens and the money go" reads off any level of the tree.

``timeline`` packs the root's children into lanes: spans that overlap in time (parallel
branches, ``Send`` fan-out) get lanes of their own, sequential ones share a lane.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = ["Bar", "Lane", "Span", "SpanKind", "Timeline", "build_trace", "timeline"]

SpanKind = Literal["run", "node", "tool", "llm"]


@dataclass
class Span:
    """One node execution, tool call or LLM call (or the run itself, at the root)."""

    id: str
    kind: SpanKind
    name: str
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    error_type: str | None = None
    error_message: str | None = None
    step_number: int | None = None
    #: LLM calls: the model answering (else the one requested) and its provider.
    model: str | None = None
    provider: str | None = None
    #: An LLM call's own figures; for other spans, the sums over the LLM calls beneath.
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    llm_calls: int = 0
    #: LLM calls (this one, or beneath) whose price genai-prices does not know.
    unpriced_calls: int = 0
    #: LLM calls: what the provider took to answer (else the span's duration).
    latency_ms: float | None = None
    children: list[Span] = field(default_factory=list)

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds() * 1000

    @property
    def failed(self) -> bool:
        return self.status == "error"

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Span]]:
        """Depth-first, in start order: ``(depth, span)`` with the root at depth 0."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _span(row: Mapping[str, Any], kind: SpanKind, name: str, **figures: Any) -> Span:
    """A span from a row of runs, steps or llm_calls: what the three tables share (id,
    status, times, error) read alike, and the ``figures`` of its own kind."""
    return Span(
        id=str(row["id"]),
        kind=kind,
        name=name,
        status=row.get("status") or "running",
        started_at=row.get("started_at"),
        completed_at=row.get("completed_at"),
        error_type=row.get("error_type"),
        error_message=row.get("error_message"),
        **figures,
    )


def _llm_span(row: Mapping[str, Any]) -> Span:
    cost = row.get("cost_usd")
    return _span(
        row,
        "llm",
        row.get("response_model") or row.get("request_model") or "llm",
        model=row.get("response_model") or row.get("request_model"),
        provider=row.get("provider_name"),
        input_tokens=_int(row.get("input_tokens")),
        output_tokens=_int(row.get("output_tokens")),
        total_tokens=_int(row.get("total_tokens")),
        cost_usd=Decimal(str(cost)) if cost is not None else Decimal(0),
        llm_calls=1,
        unpriced_calls=int(cost is None),
        latency_ms=row.get("latency_ms"),
    )


def _step_span(row: Mapping[str, Any]) -> Span:
    kind: SpanKind = "tool" if row.get("kind") == "tool" else "node"
    return _span(row, kind, row.get("node_name") or "", step_number=row.get("step_number"))


def _start_key(span: Span) -> tuple[bool, datetime | None]:
    return (span.started_at is None, span.started_at)


def _sum_up(span: Span) -> None:
    """Fill non-LLM spans with the totals of the LLM calls beneath them (post-order)."""
    span.children.sort(key=_start_key)
    for child in span.children:
        _sum_up(child)
        if span.kind != "llm":
            span.input_tokens += child.input_tokens
            span.output_tokens += child.output_tokens
            span.total_tokens += child.total_tokens
            span.cost_usd += child.cost_usd
            span.llm_calls += child.llm_calls
            span.unpriced_calls += child.unpriced_calls


def build_trace(
    run: Mapping[str, Any],
    steps: Sequence[Mapping[str, Any]],
    llm_calls: Sequence[Mapping[str, Any]],
) -> Span:
    """The run's span tree from its rows (``run``, ``steps``, ``llm_calls`` of ``get_run``)."""
    root = _span(run, "run", run.get("graph_name") or "run")
    by_id: dict[str, Span] = {}
    parents: list[tuple[Span, Any]] = []
    for row in steps:
        span = _step_span(row)
        by_id[span.id] = span
        parents.append((span, row.get("parent_step_id")))
    for row in llm_calls:
        parents.append((_llm_span(row), row.get("step_id")))
    for span, parent_id in parents:
        parent = by_id.get(str(parent_id)) if parent_id is not None else None
        (parent or root).children.append(span)
    _sum_up(root)
    return root


# -- timeline layout ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """A span placed on the timeline: milliseconds since the run started, and a row."""

    span: Span
    start_ms: float
    end_ms: float
    row: int
    depth: int
    lane: int


@dataclass(frozen=True)
class Lane:
    """Rows ``first_row .. first_row + rows - 1`` hold one branch of the run."""

    index: int
    first_row: int
    rows: int
    label: str


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    lanes: list[Lane]
    rows: int
    total_ms: float


def _pack(intervals: Sequence[tuple[float, float]]) -> list[int]:
    """Greedy interval packing: the first row whose last interval ended at or before the
    start (intervals in start order); returns each interval's row."""
    ends: list[float] = []
    rows = []
    for start, end in intervals:
        for i, last in enumerate(ends):
            if last <= start:
                ends[i] = end
                rows.append(i)
                break
        else:
            ends.append(end)
            rows.append(len(ends) - 1)
    return rows


def timeline(root: Span) -> Timeline:
    """Lanes for the run's top-level spans; inside a lane, one band of rows per depth
    (node, then what it called, ...), overlapping spans of a band on rows of their own.

    Times are relative to the run's start; a span still running (no end) extends to the
    latest time recorded in the run.
    """
    origin = root.started_at
    if origin is None:
        return Timeline([], [], 0, 0.0)
    known = [s.completed_at or s.started_at for _, s in root.walk()]
    latest = max((t for t in known if t is not None), default=origin)
    total_ms = max((latest - origin).total_seconds() * 1000, 0.0)

    def span_ms(span: Span) -> tuple[float, float]:
        start = (span.started_at or origin) - origin
        end = (span.completed_at or latest) - origin
        s = start.total_seconds() * 1000
        return s, max(end.total_seconds() * 1000, s)

    top = root.children
    lane_of = _pack([span_ms(s) for s in top])
    bars: list[Bar] = []
    lanes: list[Lane] = []
    row = 0
    for lane in range(max(lane_of, default=-1) + 1):
        members = [s for s, n in zip(top, lane_of, strict=True) if n == lane]
        by_depth: dict[int, list[Span]] = {}
        for member in members:
            for depth, span in member.walk():
                by_depth.setdefault(depth, []).append(span)
        first = row
        for depth in sorted(by_depth):
            spans = sorted(by_depth[depth], key=span_ms)
            sub_rows = _pack([span_ms(s) for s in spans])
            for span, sub in zip(spans, sub_rows, strict=True):
                start, end = span_ms(span)
                bars.append(Bar(span, start, end, row + sub, depth, lane))
            row += max(sub_rows) + 1
        names = list(dict.fromkeys(s.name for s in members))
        lanes.append(Lane(lane, first, row - first, ", ".join(names)))
    return Timeline(bars, lanes, row, total_ms)
