"""What the templates draw, computed in Python: timeline and chart geometry, number formats.

Pure (no FastAPI, no I/O), so the layout is testable without a browser and the templates stay
loops over ready-made rectangles. Coordinates are in SVG user units of a ``viewBox``; the
browser scales the drawing to the page width.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ..telemetry.trace import Span, Timeline

__all__ = [
    "STAT_COLUMNS",
    "Chart",
    "Series",
    "StatColumn",
    "SvgTimeline",
    "bar_chart",
    "column_chart",
    "fmt_ms",
    "fmt_time",
    "fmt_tokens",
    "fmt_usd",
    "timeline_svg",
]


# -- formats ------------------------------------------------------------------------------

#: What a missing figure reads as.
BLANK = "\N{EN DASH}"


def fmt_usd(value: Decimal | float | None) -> str:
    """Money with the digits that matter: ``$12.30``, ``$0.0420``, ``$0.000027``."""
    if value is None:
        return BLANK
    v = float(value)
    if v == 0:
        return "$0"
    if abs(v) >= 1:
        return f"${v:,.2f}"
    if abs(v) >= 0.01:
        return f"${v:.4f}"
    return f"${v:.6f}"


def fmt_ms(value: float | Decimal | None) -> str:
    if value is None:
        return BLANK
    v = float(value)
    return f"{v:,.1f} ms" if v < 10_000 else f"{v / 1000:,.2f} s"


def fmt_tokens(value: int | Decimal | None) -> str:
    return BLANK if value is None else f"{int(value):,}"


def fmt_time(value: datetime | date | None) -> str:
    """UTC, with the zone said (``2026-01-10 12:00:03 UTC``); dates as ISO days."""
    if value is None:
        return BLANK
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.isoformat()


@dataclass(frozen=True)
class StatColumn:
    """A figure of the dashboard's per-model and per-user tables: header, key, format."""

    header: str
    key: str
    fmt: Callable[[Any], str] = str


def _stat_columns(*keys: str) -> list[StatColumn]:
    by_key = {c.key: c for c in (
        StatColumn("runs", "runs"), StatColumn("calls", "llm_calls"),
        StatColumn("errors", "errors"), StatColumn("in", "input_tokens", fmt_tokens),
        StatColumn("out", "output_tokens", fmt_tokens), StatColumn("cost", "cost_usd", fmt_usd),
        StatColumn("avg latency", "avg_latency_ms", fmt_ms),
        StatColumn("avg run", "avg_duration_ms", fmt_ms),
    )}  # fmt: skip
    return [by_key[k] for k in keys]


#: Columns per group: a model's errors are its calls' (so they follow the calls), a user's
#: are its runs'; a model is timed per call, a user per run.
STAT_COLUMNS = {
    "model": _stat_columns("runs", "llm_calls", "errors", "input_tokens", "output_tokens",
                           "cost_usd", "avg_latency_ms"),
    "user": _stat_columns("runs", "errors", "llm_calls", "input_tokens", "output_tokens",
                          "cost_usd", "avg_duration_ms"),
}  # fmt: skip


# -- the run timeline ---------------------------------------------------------------------

ROW = 22  # height of one timeline row
LABEL_W = 170  # the lane-label column
AXIS_H = 22
CHAR_W = 6.6  # average glyph width at the bars' font size, to fit labels without JS


@dataclass(frozen=True)
class SvgBar:
    x: float
    y: float
    w: float
    h: float
    kind: str
    failed: bool
    label: str
    title: str
    span_id: str


@dataclass(frozen=True)
class SvgLane:
    y: float
    h: float
    label: str
    title: str


@dataclass(frozen=True)
class SvgTimeline:
    width: int
    height: int
    label_w: int
    bars: list[SvgBar]
    lanes: list[SvgLane]
    ticks: list[tuple[float, str]]


def nice_step(total: float, target: int = 6) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``target`` ticks."""
    if total <= 0:
        return 1.0
    raw = total / target
    power = 10 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if raw <= mult * power:
            return float(mult * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def fit(text: str, width: float) -> str:
    """``text`` cut to fit ``width`` units (with an ellipsis), or empty when nothing fits."""
    room = int((width - 8) / CHAR_W)
    if room < 3:
        return ""
    return text if len(text) <= room else text[: room - 1] + "…"


def span_title(span: Span) -> str:
    """The tooltip of a bar: what, how long, tokens and cost, and the error if any."""
    parts = [f"{span.kind} {span.name}", span.status, fmt_ms(span.duration_ms)]
    if span.kind == "llm" and span.latency_ms is not None:
        parts[2] = f"latency {fmt_ms(span.latency_ms)}"
    if span.llm_calls:
        parts.append(f"{fmt_tokens(span.input_tokens)} in / {fmt_tokens(span.output_tokens)} out")
        parts.append(fmt_usd(span.cost_usd) + (" (some unpriced)" if span.unpriced_calls else ""))
    if span.error_type or span.error_message:
        parts.append(f"{span.error_type or 'error'}: {span.error_message or ''}")
    return " · ".join(parts)


def timeline_svg(tl: Timeline, width: int = 1000) -> SvgTimeline:
    """Rectangles for ``tl``: x from time, y from row; nodes full height, callees thinner."""
    plot_w = width - LABEL_W - 10
    total = tl.total_ms or 1.0
    scale = plot_w / total
    bars = []
    for bar in tl.bars:
        span = bar.span
        h = 16.0 if bar.depth == 0 else 12.0
        x = LABEL_W + bar.start_ms * scale
        w = max((bar.end_ms - bar.start_ms) * scale, 2.0)
        y = AXIS_H + bar.row * ROW + (ROW - h) / 2
        # An LLM call shows its cost when there is room, else its model only.
        full = f"{span.name} {fmt_usd(span.cost_usd)}" if span.kind == "llm" else span.name
        label = full if fit(full, w) == full else fit(span.name, w)
        bars.append(SvgBar(x, y, w, h, span.kind, span.failed, label, span_title(span), span.id))
    lanes = [
        SvgLane(
            AXIS_H + lane.first_row * ROW, lane.rows * ROW, fit(lane.label, LABEL_W), lane.label
        )
        for lane in tl.lanes
    ]
    step = nice_step(total)
    ticks = []
    n = 0
    while n * step <= total + 1e-9:
        ticks.append((LABEL_W + n * step * scale, fmt_ms(n * step).replace(".0 ms", " ms")))
        n += 1
    return SvgTimeline(width, AXIS_H + max(tl.rows, 1) * ROW + 4, LABEL_W, bars, lanes, ticks)


# -- dashboard charts ---------------------------------------------------------------------


@dataclass(frozen=True)
class ChartBar:
    x: float
    y: float
    w: float
    h: float
    label: str
    value: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[ChartBar]
    empty: bool


@dataclass(frozen=True)
class Series:
    """What a chart draws: the figure ``value`` of each row, labelled by its ``key``, shown
    with ``fmt`` (both chart kinds take one)."""

    rows: Sequence[dict[str, Any]]
    value: str
    fmt: Callable[[Any], str]
    key: str = "key"

    def points(self) -> list[tuple[str, float]]:
        """``(label, figure)`` per row, in the rows' order (missing figures count as 0)."""
        out = []
        for row in self.rows:
            label = row.get(self.key)
            out.append(
                (fmt_time(label) if isinstance(label, date) else str(label or BLANK),
                 float(row.get(self.value) or 0))
            )  # fmt: skip
        return out


def _top(points: Sequence[tuple[str, float]]) -> float:
    """The figure a full-length bar stands for (1 when all are 0: no division by zero)."""
    return max((v for _, v in points), default=0.0) or 1.0


def bar_chart(series: Series, *, width: int = 480, limit: int = 12) -> Chart:
    """Horizontal bars, largest first (models, users): label, bar, formatted value."""
    items = sorted(series.points(), key=lambda t: -t[1])[:limit]
    fmt, top = series.fmt, _top(items)
    label_w, value_w, bar_h, gap = 150, 90, 18, 8
    room = width - label_w - value_w
    bars = [
        ChartBar(
            label_w, 4 + i * (bar_h + gap), max(room * v / top, 1.0 if v else 0.0), bar_h,
            fit(label, label_w), fmt(v), f"{label}: {fmt(v)}",
        )
        for i, (label, v) in enumerate(items)
    ]  # fmt: skip
    height = 8 + len(items) * (bar_h + gap)
    return Chart(width, max(height, 30), bars, not any(v for _, v in items))


def column_chart(series: Series, *, width: int = 480, height: int = 180, limit: int = 31) -> Chart:
    """Vertical columns in the rows' order (days, oldest first), the last ``limit`` only."""
    items = series.points()[-limit:]
    fmt, top = series.fmt, _top(items)
    axis_h, top_pad = 20, 18
    slot = width / max(len(items), 1)
    col_w = min(slot * 0.7, 40)
    plot_h = height - axis_h - top_pad
    bars = []
    for i, (label, v) in enumerate(items):
        h = max(plot_h * v / top, 1.0 if v else 0.0)
        x = i * slot + (slot - col_w) / 2
        short = label[5:] if len(label) == 10 else label  # 2026-01-10 -> 01-10
        bars.append(
            ChartBar(x, top_pad + plot_h - h, col_w, h, fit(short, slot + 8), fmt(v),
                     f"{label}: {fmt(v)}")
        )  # fmt: skip
    return Chart(width, height, bars, not any(v for _, v in items))
