"""Events -> rows: fold a batch of events into one partial row per id (writer thread only).

Everything costly happens here rather than in the callback: JSON summaries, token parsing,
prices. A row is a dict over the table's columns (``records.py``) where None means "not known
from this batch" (times are epoch seconds, jsonb values ``RawJson`` text); the upsert
(``sql.py``) keeps what the database already has for those, so a start and an end folded into
different batches, in either order, meet in one row.

Values are capped here, at capture into a row, so that no single value can make the database
refuse a batch: ids and names that land in btree-indexed text columns (a 4,000-character
``trace_id`` exceeds PostgreSQL's index row limit) keep a prefix plus a hash marker, JSON
values become a truncated preview, the caller's metadata is capped key by key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from .events import Event, LlmEnd, LlmStart, RunEnd, RunStart, StepEnd, StepStart
from .pricing import cost_usd
from .records import LLM_COLS, RUN_COLS, STEP_COLS

__all__ = [
    "MAX_ERROR_CHARS",
    "MAX_KEY_CHARS",
    "MAX_METADATA_CHARS",
    "RawJson",
    "Rows",
    "cap_key",
    "fold",
    "merge",
    "parse_llm_result",
    "run_metadata",
    "summarize",
]

MAX_ERROR_CHARS = 2000
#: Longest id/name kept verbatim; btree entries must stay well under ~2,700 bytes.
MAX_KEY_CHARS = 512
#: Budget of the caller's metadata stored on a run (JSON characters).
MAX_METADATA_CHARS = 8_000

#: Metadata keys LangGraph/LangSmith add themselves, or that have columns of their own.
_NOT_CALLER_METADATA = frozenset(
    {"user_id", "thread_id", "trace_id", "idempotency_key", "checkpoint_id", "checkpoint_ns",
     "run_id", "task_id", "langgraph_auth_user", "langgraph_auth_user_id",
     "langgraph_auth_permissions", "langgraph_request_id"}
)  # fmt: skip
_NOT_CALLER_PREFIXES = ("ls_", "langgraph_", "__pregel")


# --- capping ---------------------------------------------------------------------------------


def cap_key(value: Any) -> str | None:
    """``str(value)``, or a prefix plus ``…[sha256:<16 hex>]`` when longer than MAX_KEY_CHARS.

    The hash keeps distinct long keys distinct (idempotency keys stay unique) and marks the
    value as truncated. NUL characters, which PostgreSQL text refuses, are removed.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if len(text) <= MAX_KEY_CHARS:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[: MAX_KEY_CHARS - 26]}…[sha256:{digest}]"


def _default(obj: Any) -> Any:
    from langchain_core.messages import BaseMessage

    if isinstance(obj, BaseMessage):
        out: dict[str, Any] = {"type": obj.type, "content": obj.content}
        if obj.id:
            out["id"] = obj.id
        tool_calls = getattr(obj, "tool_calls", None)
        if tool_calls:
            out["tool_calls"] = tool_calls
        return out
    if isinstance(obj, UUID | Decimal | datetime):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    if hasattr(obj, "model_dump"):
        try:
            return obj.model_dump(mode="json")
        except Exception:  # a summary must never fail the batch
            return repr(obj)[:200]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"__type__": type(obj).__name__, **fields}
    if isinstance(obj, BaseException):
        return {"__type__": type(obj).__name__, "message": str(obj)[:MAX_ERROR_CHARS]}
    return repr(obj)[:200]


class RawJson(str):
    """JSON text for a jsonb column, serialised once here and spliced as is into the batch."""

    __slots__ = ()


def _dumps(obj: Any) -> str:
    text = json.dumps(obj, default=_default, ensure_ascii=False)
    # PostgreSQL jsonb rejects NUL; lone surrogates can't be encoded as UTF-8
    if "\\u0000" in text:
        text = text.replace("\\u0000", "")
    return text.encode("utf-8", "replace").decode("utf-8") if _has_surrogate(text) else text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def summarize(obj: Any, max_chars: int) -> RawJson | None:
    """JSON text for ``obj``, replaced by a truncated preview when longer than ``max_chars``."""
    if obj is None:
        return None
    try:
        text = _dumps(obj)
    except (TypeError, ValueError, RecursionError) as exc:
        return RawJson(
            json.dumps({"__unserializable__": type(obj).__name__, "error": str(exc)[:200]})
        )
    if len(text) > max_chars:
        preview = {"__truncated__": True, "chars": len(text), "preview": text[:max_chars]}
        return RawJson(json.dumps(preview, ensure_ascii=False))
    return RawJson(text)


def run_metadata(md: Mapping[str, Any], *, resume: bool = False) -> RawJson:
    """The caller's ``config["metadata"]`` for ``runs.metadata``: every JSON-serialisable key.

    Keys LangGraph adds itself (``ls_*``, ``langgraph_*``, checkpoint ids) and keys stored in
    columns of their own are left out. Keys whose values can't be serialised are listed under
    ``__dropped__``; when the whole exceeds MAX_METADATA_CHARS the largest values are dropped
    first and listed under ``__truncated__``.
    """
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for key, value in md.items():
        if (
            not isinstance(key, str)
            or key in _NOT_CALLER_METADATA
            or key.startswith(_NOT_CALLER_PREFIXES)
        ):
            continue
        try:
            kept[key] = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            dropped.append(key)
    if resume and "resume" not in kept:
        kept["resume"] = "true"
    truncated: list[str] = []
    size = sum(len(k) + len(v) + 6 for k, v in kept.items())
    for key in sorted(kept, key=lambda k: len(kept[k]), reverse=True):
        if size <= MAX_METADATA_CHARS:
            break
        size -= len(key) + len(kept.pop(key)) + 6
        truncated.append(key)
    parts = [f"{json.dumps(k, ensure_ascii=False)}: {v}" for k, v in kept.items()]
    if dropped:
        parts.append(f'"__dropped__": {json.dumps(dropped, ensure_ascii=False)}')
    if truncated:
        parts.append(f'"__truncated__": {json.dumps(truncated, ensure_ascii=False)}')
    text = "{" + ", ".join(parts) + "}"
    if "\\u0000" in text:
        text = text.replace("\\u0000", "")
    if _has_surrogate(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return RawJson(text)


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31:
        return value
    return None


def _msg(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR_CHARS].replace("\x00", "")


# --- LLM results -----------------------------------------------------------------------------


def parse_llm_result(response: Any) -> dict[str, Any]:
    """Tokens, response model/id and finish reasons from an ``LLMResult``.

    Prefers the normalised ``usage_metadata`` of the first choice (never summed across
    choices: n>1 repeats the full usage), falls back to the provider's raw ``llm_output``.
    Unknown stays None, never 0.
    """
    out: dict[str, Any] = {}
    gens = getattr(response, "generations", None) or []
    first = gens[0][0] if gens and gens[0] else None
    msg = getattr(first, "message", None)
    llm_output = getattr(response, "llm_output", None) or {}
    meta: Mapping[str, Any] = getattr(msg, "response_metadata", None) or {}
    usage = getattr(msg, "usage_metadata", None)
    if usage:
        inp = usage.get("input_token_details") or {}
        outp = usage.get("output_token_details") or {}
        out["input_tokens"] = _int(usage.get("input_tokens"))
        out["output_tokens"] = _int(usage.get("output_tokens"))
        out["total_tokens"] = _int(usage.get("total_tokens"))
        out["cache_read_input_tokens"] = _int(inp.get("cache_read"))
        out["cache_creation_input_tokens"] = _int(inp.get("cache_creation"))
        out["reasoning_output_tokens"] = _int(outp.get("reasoning"))
    elif isinstance(llm_output.get("token_usage"), Mapping):  # OpenAI raw
        tu = llm_output["token_usage"]
        out["input_tokens"] = _int(tu.get("prompt_tokens"))
        out["output_tokens"] = _int(tu.get("completion_tokens"))
        out["total_tokens"] = _int(tu.get("total_tokens"))
        out["cache_read_input_tokens"] = _int(
            (tu.get("prompt_tokens_details") or {}).get("cached_tokens")
        )
        out["reasoning_output_tokens"] = _int(
            (tu.get("completion_tokens_details") or {}).get("reasoning_tokens")
        )
    elif isinstance(llm_output.get("usage"), Mapping):  # Anthropic raw: input excludes cache
        u = llm_output["usage"]
        read = _int(u.get("cache_read_input_tokens"))
        write = _int(u.get("cache_creation_input_tokens"))
        base = _int(u.get("input_tokens"))
        out["input_tokens"] = None if base is None else base + (read or 0) + (write or 0)
        out["output_tokens"] = _int(u.get("output_tokens"))
        if out["input_tokens"] is not None and out["output_tokens"] is not None:
            out["total_tokens"] = out["input_tokens"] + out["output_tokens"]
        out["cache_read_input_tokens"] = read
        out["cache_creation_input_tokens"] = write
    out["response_model"] = cap_key(
        meta.get("model_name")
        or meta.get("model")
        or llm_output.get("model_name")
        or llm_output.get("model")
    )
    out["response_id"] = cap_key(meta.get("id") or llm_output.get("id") or getattr(msg, "id", None))
    reasons: list[str] = []
    for choice in gens:
        if not choice:
            continue
        info = getattr(choice[0], "generation_info", None) or {}
        cmeta = getattr(getattr(choice[0], "message", None), "response_metadata", None) or {}
        reason = info.get("finish_reason") or cmeta.get("finish_reason") or cmeta.get("stop_reason")
        if reason:
            reasons.append(cap_key(reason) or "")
    out["finish_reasons"] = reasons or None
    return out


# --- folding ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Rows:
    """The rows one batch writes: one partial row per id, plus the runs that ended in it."""

    runs: dict[UUID, dict[str, Any]] = dataclasses.field(default_factory=dict)
    steps: dict[UUID, dict[str, Any]] = dataclasses.field(default_factory=dict)
    calls: dict[UUID, dict[str, Any]] = dataclasses.field(default_factory=dict)
    ended: list[UUID] = dataclasses.field(default_factory=list)
    #: run id -> the tenant its rows are written for (runs without one are absent)
    tenants: dict[UUID, str] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.runs) + len(self.steps) + len(self.calls)


def merge(
    table: dict[UUID, dict[str, Any]], cols: tuple[str, ...], rid: UUID, values: dict[str, Any]
) -> dict[str, Any]:
    row = table.get(rid)
    if row is None:
        row = dict.fromkeys(cols)
        row["id"] = rid
        table[rid] = row
    for key, value in values.items():
        if value is not None:
            row[key] = value
    return row


def _run_start(rows: Rows, ev: RunStart, jmax: int) -> None:
    md = ev.metadata
    merge(
        rows.runs,
        RUN_COLS,
        ev.run_id,
        {
            "graph_name": cap_key(ev.graph_name),
            "thread_id": cap_key(ev.thread_id),
            "user_id": cap_key(md.get("user_id")),
            "status": "running",
            "input_summary": summarize(ev.inputs, jmax),
            "trace_id": cap_key(md.get("trace_id")) or str(ev.run_id),
            "idempotency_key": cap_key(md.get("idempotency_key")),
            "metadata": run_metadata(md, resume=ev.resume),
            "started_at": ev.at,
        },
    )


def _run_end(rows: Rows, ev: RunEnd, jmax: int) -> None:
    merge(
        rows.runs,
        RUN_COLS,
        ev.run_id,
        {
            "status": ev.status,
            "output_summary": summarize(ev.outputs, jmax),
            "error_type": cap_key(ev.error_type),
            "error_message": _msg(ev.error_message),
            "completed_at": ev.at,
        },
    )
    rows.ended.append(ev.run_id)


def _task_id(ns: str) -> str | None:
    """The task id LangGraph puts at the end of a checkpoint namespace (``node:<task id>``)."""
    last = ns.rpartition("|")[2]
    return last.partition(":")[2] or None


def _step_start(rows: Rows, ev: StepStart, jmax: int) -> None:
    merge(
        rows.steps,
        STEP_COLS,
        ev.step_id,
        {
            "run_id": ev.run_id,
            "parent_step_id": ev.parent_step_id,
            "kind": ev.kind,
            "node_name": cap_key(ev.name),
            "step_number": _int(ev.step_number),
            "triggers": [cap_key(x) for x in ev.triggers] if ev.triggers else None,
            "checkpoint_ns": cap_key(ev.checkpoint_ns),
            "task_id": cap_key(ev.task_id or _task_id(ev.checkpoint_ns)),
            "attempt": _int(ev.attempt),
            "input_data": summarize(ev.inputs, jmax),
            "status": "running",
            "started_at": ev.at,
        },
    )


def _step_end(rows: Rows, ev: StepEnd, jmax: int) -> None:
    merge(
        rows.steps,
        STEP_COLS,
        ev.step_id,
        {
            "run_id": ev.run_id,
            "node_name": cap_key(ev.name) or "?",
            "status": ev.status,
            "output_data": summarize(ev.outputs, jmax),
            "error_type": cap_key(ev.error_type),
            "error_message": _msg(ev.error_message),
            "completed_at": ev.at,
        },
    )


def _llm_start(rows: Rows, ev: LlmStart, jmax: int) -> None:
    merge(
        rows.calls,
        LLM_COLS,
        ev.call_id,
        {
            "run_id": ev.run_id,
            "step_id": ev.step_id,
            "thread_id": cap_key(ev.thread_id),
            "operation_name": ev.operation,
            "provider_name": cap_key(ev.provider),
            "request_model": cap_key(ev.model),
            "status": "running",
            "started_at": ev.at,
        },
    )


def _llm_end(rows: Rows, ev: LlmEnd, jmax: int) -> None:
    values = parse_llm_result(ev.response) if ev.response is not None else {}
    t0, first, t1 = ev.started, ev.first_token, ev.at
    values.update(
        {
            "run_id": ev.run_id,
            "status": ev.status,
            "error_type": cap_key(ev.error_type),
            "error_message": _msg(ev.error_message),
            "completed_at": t1,
            "latency_ms": (t1 - t0) * 1000.0 if t0 else None,
            "time_to_first_chunk_ms": (first - t0) * 1000.0 if first and t0 else None,
            "streamed": first is not None,
            "request_model": cap_key(ev.model),
            "provider_name": cap_key(ev.provider),
        }
    )
    row = merge(rows.calls, LLM_COLS, ev.call_id, values)
    row["cost_usd"] = (
        cost_usd(
            row["request_model"] or row["response_model"],
            row["provider_name"],
            row["input_tokens"],
            row["output_tokens"],
            row["cache_read_input_tokens"],
            row["cache_creation_input_tokens"],
        )
        if row["input_tokens"] is not None
        else None
    )


_FOLD: dict[type, Any] = {
    RunStart: _run_start,
    RunEnd: _run_end,
    StepStart: _step_start,
    StepEnd: _step_end,
    LlmStart: _llm_start,
    LlmEnd: _llm_end,
}


def fold_one(rows: Rows, event: Event, max_json_chars: int) -> None:
    """Fold one event into ``rows`` (later non-None values win)."""
    _FOLD[type(event)](rows, event, max_json_chars)


def fold(events: Iterable[Event], max_json_chars: int) -> Rows:
    """Fold a batch of events into one row per id."""
    rows = Rows()
    for event in events:
        fold_one(rows, event, max_json_chars)
    return rows
