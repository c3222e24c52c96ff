"""Automatic telemetry: runs, steps and LLM calls recorded through LangChain callbacks.

Layout: ``events`` (what the handler hands the writer) -> ``handler`` (callbacks, hot path)
-> ``writer`` (thread, failures, spill) -> ``rows`` (events folded into rows) -> ``sql``
(upserts generated from ``records``); ``queries`` reads the tables back (sans-IO ops shared by
``Telemetry`` and ``AsyncTelemetry`` in ``api``); ``otel`` exports spans; ``pricing`` costs.
"""

from .api import AsyncTelemetry, Telemetry, disable, enable
from .events import Capture
from .handler import TelemetryHandler
from .queries import GroupBy, RunFilters, RunPage
from .records import GroupStats, LlmCall, Run, RunDetail, RunStats, Step
from .writer import TelemetryWriter, WriterStatus

__all__ = [
    "AsyncTelemetry",
    "Capture",
    "GroupBy",
    "GroupStats",
    "LlmCall",
    "Run",
    "RunDetail",
    "RunFilters",
    "RunPage",
    "RunStats",
    "Step",
    "Telemetry",
    "TelemetryHandler",
    "TelemetryWriter",
    "WriterStatus",
    "disable",
    "enable",
]
