"""What the callback handler hands the writer: one typed record per thing that happened.

The handler (``handler.py``) builds these on the graph's thread; the writer thread
(``writer.py``) folds them into rows (``rows.py``) and optionally into OpenTelemetry spans
(``otel.py``). Both sides import this module, so the two can't disagree on a field's position.
NamedTuples because they are the cheapest record to build on the hot path (one tuple
allocation) and still carry names.

Times are ``time.time()`` floats (seconds). ``inputs``/``outputs`` are the raw Python objects,
already ``None`` when the capture level forbids content; serialising them is the writer's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, TypeAlias
from uuid import UUID

__all__ = [
    "CAPTURE_LEVELS",
    "Capture",
    "Event",
    "LlmEnd",
    "LlmStart",
    "RunEnd",
    "RunStart",
    "StepEnd",
    "StepStart",
]

Capture = Literal["none", "metadata", "full"]
"""How much of what users typed and models answered is recorded.

- ``"none"``: nothing is recorded for the graph (turns recording off under ``enable()``).
- ``"metadata"`` (default): structure, names, timing, status, error *types*, models, tokens,
  cost and the caller's ``config["metadata"]``; no inputs, outputs, interrupt payloads or
  error messages (those routinely quote the user's text or the model's answer).
- ``"full"``: also run/step/tool inputs and outputs and error messages, each truncated to
  ``max_json_chars``.
"""
CAPTURE_LEVELS: tuple[Capture, ...] = ("none", "metadata", "full")


class RunStart(NamedTuple):
    run_id: UUID
    graph_name: str | None
    thread_id: str | None
    metadata: Mapping[str, Any]
    inputs: Any
    resume: bool
    at: float
    export: Any = None  # (tracer, parent context) when this run is also exported as spans
    tenant: str | None = None  # the tenant the run acted for (written under its scope)
    owner: str | None = None  # owner_id of the run's rows (tenancy.recorded_owner)


class RunEnd(NamedTuple):
    run_id: UUID
    status: str
    outputs: Any
    error_type: str | None
    error_message: str | None
    at: float


class StepStart(NamedTuple):
    step_id: UUID
    run_id: UUID
    parent_step_id: UUID | None
    kind: str  # 'node' or 'tool'
    name: str
    step_number: Any
    triggers: Any
    checkpoint_ns: str
    task_id: str | None
    attempt: int
    inputs: Any
    at: float


class StepEnd(NamedTuple):
    step_id: UUID
    run_id: UUID
    name: str | None
    status: str
    outputs: Any
    error_type: str | None
    error_message: str | None
    at: float


class LlmStart(NamedTuple):
    call_id: UUID
    run_id: UUID
    step_id: UUID | None
    thread_id: str | None
    operation: str
    provider: str | None
    model: str | None
    at: float


class LlmEnd(NamedTuple):
    call_id: UUID
    run_id: UUID
    status: str
    response: Any  # LLMResult: only usage, model, ids and finish reasons are read from it
    error_type: str | None
    error_message: str | None
    started: float
    first_token: float | None
    at: float
    model: str | None
    provider: str | None


Event: TypeAlias = RunStart | RunEnd | StepStart | StepEnd | LlmStart | LlmEnd
