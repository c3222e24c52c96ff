"""OpenTelemetry export: each recorded run also becomes a tree of spans (the ``otel`` extra).

One span per run (``invoke_workflow <graph>``), node step (``<node>``), tool call
(``execute_tool <tool>``) and LLM call (``chat <model>``), parented exactly like the rows in
Postgres (a step under its parent step or the run, a call under its step), with the
OpenTelemetry GenAI semantic-convention attributes (``gen_ai.request.model``,
``gen_ai.usage.input_tokens``, ...). Each span also carries the id of its row
(``pgstore.run_id``, ``pgstore.step_id``, ``pgstore.llm_call_id``) so a trace links back to
the database. The root span is a child of whatever span was current when the graph was
invoked (an HTTP request span, say).

Spans are built in the writer thread from the same events as the rows, with the event's own
timestamps, so exporting adds nothing to the graph's thread but one context lookup per run.
No content (prompts, answers) is put on spans, whatever the capture level.
"""

from __future__ import annotations

import logging
from typing import Any

from .events import LlmEnd, LlmStart, RunEnd, RunStart, StepEnd, StepStart
from .pricing import cost_usd
from .rows import parse_llm_result

__all__ = ["SpanExporter", "current_context"]

log = logging.getLogger(__name__)

SCOPE = "langgraph_pgstore"
#: Runs whose end never reached the exporter (events lost to a full buffer) are ended and
#: forgotten, oldest first, beyond this many open runs.
MAX_OPEN_RUNS = 10_000


def _ns(t: float) -> int:
    return int(t * 1e9)


def current_context() -> Any:
    """The caller's OpenTelemetry context (the handler grabs it when a run starts)."""
    from opentelemetry import context

    return context.get_current()


class _Run:
    __slots__ = ("root", "spans", "tracer")

    def __init__(self, tracer: Any, root: Any) -> None:
        self.tracer = tracer
        self.root = root
        self.spans: dict[Any, Any] = {}


class SpanExporter:
    """Turns events into spans; one instance per writer (it runs on the writer thread)."""

    def __init__(self) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            from ..errors import ConfigurationError

            raise ConfigurationError(
                "OpenTelemetry export needs the otel extra: pip install 'langgraph-pgstore[otel]'"
            ) from exc
        self._trace = trace
        self._runs: dict[Any, _Run] = {}
        self._tracers: dict[Any, Any] = {}

    def tracer(self, provider: Any = None) -> Any:
        """The tracer of ``provider`` (None: the global provider), one per provider."""
        tracer = self._tracers.get(provider)
        if tracer is None:
            prov = provider or self._trace.get_tracer_provider()
            tracer = self._tracers[provider] = prov.get_tracer(SCOPE)
        return tracer

    @property
    def open_runs(self) -> int:
        return len(self._runs)

    def on_event(self, event: Any) -> None:
        kind = type(event)
        if kind is RunStart:
            self._run_start(event)
            return
        run = self._runs.get(getattr(event, "run_id", None))
        if run is None:
            return  # not an exported run (or a spilled row)
        if kind is StepStart:
            self._child(run, event.step_id, event.parent_step_id, event.at, *_step_span(event))
        elif kind is LlmStart:
            attrs = {
                "gen_ai.operation.name": event.operation,
                "gen_ai.provider.name": event.provider,
                "gen_ai.request.model": event.model,
                "gen_ai.conversation.id": event.thread_id,
                "pgstore.llm_call_id": str(event.call_id),
            }
            name = f"{event.operation} {event.model}" if event.model else event.operation
            self._child(run, event.call_id, event.step_id, event.at, name, attrs)
        elif kind is StepEnd:
            self._end(run.spans.pop(event.step_id, None), event.status, event.error_type, event.at)
        elif kind is LlmEnd:
            span = run.spans.pop(event.call_id, None)
            if span is not None:
                self._llm_result(span, event)
                self._end(span, event.status, event.error_type, event.at)
        elif kind is RunEnd:
            self._runs.pop(event.run_id, None)
            for span in run.spans.values():  # orphans end with the run, as their rows do
                self._end(span, event.status, event.error_type, event.at)
            self._end(run.root, event.status, event.error_type, event.at)

    def _run_start(self, ev: RunStart) -> None:
        if ev.export is None:
            return
        tracer, parent_ctx = ev.export
        md = ev.metadata
        attrs = {
            "gen_ai.operation.name": "invoke_workflow",
            "gen_ai.workflow.name": ev.graph_name,
            "gen_ai.conversation.id": ev.thread_id,
            "user.id": _str(md.get("user_id")),
            "pgstore.run_id": str(ev.run_id),
            "pgstore.trace_id": _str(md.get("trace_id")),
        }
        while len(self._runs) >= MAX_OPEN_RUNS:
            stale = self._runs.pop(next(iter(self._runs)))
            for span in (*stale.spans.values(), stale.root):
                span.set_attribute("pgstore.status", "unknown")
                span.end()
        name = f"invoke_workflow {ev.graph_name}" if ev.graph_name else "invoke_workflow"
        root = tracer.start_span(
            name, context=parent_ctx, start_time=_ns(ev.at), attributes=_clean(attrs)
        )
        self._runs[ev.run_id] = _Run(tracer, root)

    def _child(
        self, run: _Run, key: Any, parent_key: Any, at: float, name: str, attrs: dict[str, Any]
    ) -> None:
        parent = run.spans.get(parent_key, run.root) if parent_key is not None else run.root
        ctx = self._trace.set_span_in_context(parent)
        run.spans[key] = run.tracer.start_span(
            name, context=ctx, start_time=_ns(at), attributes=_clean(attrs)
        )

    def _end(self, span: Any, status: str, error_type: str | None, at: float) -> None:
        if span is None:
            return
        span.set_attribute("pgstore.status", status)
        if status == "error":
            span.set_attribute("error.type", error_type or "_OTHER")
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))
        span.end(end_time=_ns(at))

    def _llm_result(self, span: Any, ev: LlmEnd) -> None:
        values = parse_llm_result(ev.response) if ev.response is not None else {}
        attrs = {
            "gen_ai.response.model": values.get("response_model"),
            "gen_ai.response.id": values.get("response_id"),
            "gen_ai.usage.input_tokens": values.get("input_tokens"),
            "gen_ai.usage.output_tokens": values.get("output_tokens"),
            "gen_ai.usage.cache_read.input_tokens": values.get("cache_read_input_tokens"),
            "gen_ai.usage.cache_creation.input_tokens": values.get("cache_creation_input_tokens"),
            "gen_ai.usage.reasoning.output_tokens": values.get("reasoning_output_tokens"),
            "gen_ai.request.stream": ev.first_token is not None,
        }
        if values.get("finish_reasons"):
            attrs["gen_ai.response.finish_reasons"] = tuple(values["finish_reasons"])
        if ev.first_token is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = ev.first_token - ev.started
        if values.get("input_tokens") is not None:
            cost = cost_usd(
                ev.model or values.get("response_model"),
                ev.provider,
                values.get("input_tokens"),
                values.get("output_tokens"),
                values.get("cache_read_input_tokens"),
                values.get("cache_creation_input_tokens"),
            )
            if cost is not None:
                attrs["pgstore.cost_usd"] = float(cost)  # no GenAI attribute for cost exists
        span.set_attributes(_clean(attrs))


def _step_span(ev: StepStart) -> tuple[str, dict[str, Any]]:
    if ev.kind == "tool":
        return f"execute_tool {ev.name}", {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": ev.name,
            "gen_ai.tool.call.id": ev.task_id,
            "pgstore.step_id": str(ev.step_id),
        }
    return ev.name, {
        "langgraph.node": ev.name,
        "langgraph.step": ev.step_number if isinstance(ev.step_number, int) else None,
        "langgraph.checkpoint_ns": ev.checkpoint_ns,
        "langgraph.attempt": ev.attempt,
        "pgstore.step_id": str(ev.step_id),
    }


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    """OpenTelemetry rejects None attribute values: leave unknowns out."""
    return {k: v for k, v in attrs.items() if v is not None}
