"""Automatic telemetry: runs, steps and LLM calls recorded through LangChain callbacks."""

from .api import AsyncTelemetry, Telemetry, disable, enable
from .handler import TelemetryHandler
from .queries import GroupBy, RunDetail, RunPage
from .writer import TelemetryWriter

__all__ = [
    "AsyncTelemetry",
    "GroupBy",
    "RunDetail",
    "RunPage",
    "Telemetry",
    "TelemetryHandler",
    "TelemetryWriter",
    "disable",
    "enable",
]
