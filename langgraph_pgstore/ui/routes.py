"""The web UI's routes: ``/ui/`` (runs), ``/ui/runs/{id}`` (one run), ``/ui/dashboard``.

Built by ``api.create_router(..., ui=True)`` with the router's own ``call`` (errors to HTTP
codes) and caller dependency (the host's ``auth``), so a page sees exactly what the JSON
routes would show the same caller: another user's run is "not found" (404), never
"forbidden". Every read is one of the library's operations (telemetry and conversations
queries) composed into one op per page, so a page is one pooled connection and one
transaction.
"""

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.resources import files
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

try:
    import jinja2
    from fastapi import APIRouter, HTTPException, Query, Request
    from fastapi.responses import HTMLResponse, Response
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ..errors import ConfigurationError

    raise ConfigurationError(
        "the web UI needs FastAPI and Jinja2: pip install 'langgraph-pgstore[api]'"
    ) from exc

from .._ops import Op
from ..conversations import ops as conv_ops
from ..conversations.models import Message
from ..errors import NotFound
from ..schema.telemetry import RUN_STATUSES
from ..telemetry import queries as tq
from ..telemetry.trace import Span, build_trace, timeline
from . import views
from .views import Series

__all__ = ["ui_router"]

T = TypeVar("T")

#: Runs per page of the list.
PAGE = 50
#: Messages shown beside a run (the thread's latest).
MESSAGES = 200
#: Presets of the time-range filter.
RANGES = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
          "30d": timedelta(days=30)}  # fmt: skip
#: The mirror writes a turn's messages when its checkpoint commits, a moment after the run
#: ended: messages created this long after the run still count as the run's.
MIRROR_SLACK = timedelta(seconds=5)

STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}


class Runner(Protocol):
    """The router's ``call``: runs an operation on the pool, our errors as ``HTTPException``."""

    def __call__(self, op: Op[T], /) -> Awaitable[T]: ...


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("langgraph_pgstore.ui", "templates"),
        autoescape=True,  # stored text (prompts, errors, names) is data, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        usd=views.fmt_usd, ms=views.fmt_ms, tokens=views.fmt_tokens, when=views.fmt_time
    )
    return env


# -- page data (sans-IO ops composed from the library's reads) ----------------------------


def _runs_op(
    limit: int, cursor: str | None, filters: dict[str, Any]
) -> Op[tuple[tq.RunPage, dict[Any, dict[str, Any]]]]:
    page = yield from tq.list_runs(limit=limit, cursor=cursor, **filters)
    totals = yield from tq.run_totals([r["id"] for r in page["items"]])
    return page, totals


def _thread_messages(thread_id: str | None, user: str | None) -> Op[list[Message] | None]:
    """The run's session messages, or None when the thread has no session the caller owns."""
    if not thread_id:
        return None
    try:
        # The run is the caller's; its thread's session must be too.
        session = yield from conv_ops.get_session_by_thread(thread_id, owner_id=user)
        messages = yield from conv_ops.list_messages(session.id, limit=MESSAGES, last=True)
        return messages["items"]
    except NotFound:
        return None


def _run_op(run_id: str, user: str | None) -> Op[tuple[tq.RunDetail, list[Message] | None]]:
    detail = yield from tq.get_run(run_id, owner_id=user)  # NotFound: absent or not ours
    messages = yield from _thread_messages(detail["run"].get("thread_id"), user)
    return detail, messages


def _dashboard_op(filters: dict[str, Any]) -> Op[dict[str, list[dict[str, Any]]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for by in ("model", "user", "day"):
        out[by] = [dict(r) for r in (yield from tq.stats(by, **filters))]
    return out


# -- request parsing ----------------------------------------------------------------------


def _when(value: str | None, name: str) -> datetime | None:
    """A ``datetime-local`` form value (naive = UTC) or ISO timestamp; empty = no bound."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(422, f"{name} must be a date and time, got {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _time_filters(range_: str | None, since: str | None, until: str | None) -> dict[str, Any]:
    if range_ and range_ not in RANGES:
        raise HTTPException(422, f"range must be one of {', '.join(RANGES)}, got {range_!r}")
    start = datetime.now(UTC) - RANGES[range_] if range_ else _when(since, "since")
    return {"since": start, "until": _when(until, "until")}


def _models(root: Span) -> list[dict[str, Any]]:
    """Per-model calls, tokens and cost of one run, from its LLM spans."""
    acc: dict[str, dict[str, Any]] = {}
    for _, span in root.walk():
        if span.kind != "llm":
            continue
        row = acc.setdefault(
            span.model or "?",
            {"key": span.model or "?", "llm_calls": 0, "input_tokens": 0, "output_tokens": 0,
             "cost_usd": Decimal(0), "unpriced": 0},
        )  # fmt: skip
        row["llm_calls"] += 1
        row["input_tokens"] += span.input_tokens
        row["output_tokens"] += span.output_tokens
        row["cost_usd"] += span.cost_usd
        row["unpriced"] += span.unpriced_calls
    return sorted(acc.values(), key=lambda r: -r["cost_usd"])


# -- the router ---------------------------------------------------------------------------


def ui_router(call: Runner, caller: Any) -> APIRouter:
    """The UI's routes; ``caller`` is the JSON routes' ``Depends(auth)``, reused as is."""
    env = _environment()
    assets = {name: files(__package__).joinpath("static", name).read_bytes() for name in STATIC}
    router = APIRouter(prefix="/ui", include_in_schema=False)

    def render(request: Request, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        def path(route: str, /, **params: Any) -> str:
            return request.url_for(route, **params).path

        def link(route: str, query: dict[str, Any], /, **params: Any) -> str:
            kept = {k: v for k, v in query.items() if v not in (None, "")}
            return path(route, **params) + ("?" + urlencode(kept) if kept else "")

        html = env.get_template(template).render(request=request, path=path, link=link, **context)
        return HTMLResponse(html, status_code=code)

    def error_page(request: Request, exc: HTTPException) -> HTMLResponse:
        return render(request, "error.html", exc.status_code, status=exc.status_code, nav="",
                      detail=exc.detail)  # fmt: skip

    @router.get("/", name="pgstore_ui_runs")
    async def runs(
        request: Request,
        user: str | None = caller,
        status: str | None = None,
        graph: str | None = None,
        owner: str | None = Query(None, alias="user"),
        range_: str | None = Query(None, alias="range"),
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
    ) -> HTMLResponse:
        form = {"status": status, "graph": graph, "user": owner, "range": range_,
                "since": since, "until": until}  # fmt: skip
        try:
            filters = {
                "owner_id": user if user is not None else (owner or None),
                "status": status or None,
                "graph_name": graph or None,
                **_time_filters(range_, since, until),
            }
            page, totals = await call(_runs_op(PAGE, cursor or None, filters))
        except HTTPException as exc:
            return error_page(request, exc)
        return render(
            request, "runs.html", runs=page["items"], totals=totals,
            next_cursor=page["next_cursor"],
            form=form, scoped=user is not None, statuses=RUN_STATUSES, ranges=list(RANGES),
            nav="runs",
        )  # fmt: skip

    @router.get("/runs/{run_id}", name="pgstore_ui_run")
    async def run_page(request: Request, run_id: str, user: str | None = caller) -> HTMLResponse:
        try:
            detail, messages = await call(_run_op(run_id, user))
        except HTTPException as exc:
            return error_page(request, exc)
        run = detail["run"]
        root = build_trace(run, detail["steps"], detail["llm_calls"])
        since = run["started_at"]
        until = (run.get("completed_at") or datetime.now(UTC)) + MIRROR_SLACK
        return render(
            request, "run.html", run=run, root=root, spans=list(root.walk())[1:],
            svg=views.timeline_svg(timeline(root)), models=_models(root), messages=messages,
            in_run=lambda m: since <= m.created_at <= until, nav="runs",
        )  # fmt: skip

    @router.get("/dashboard", name="pgstore_ui_dashboard")
    async def dashboard(
        request: Request,
        user: str | None = caller,
        graph: str | None = None,
        range_: str | None = Query(None, alias="range"),
        since: str | None = None,
        until: str | None = None,
    ) -> HTMLResponse:
        form = {"graph": graph, "range": range_, "since": since, "until": until}
        try:
            filters = {"owner_id": user, "graph_name": graph or None,
                       **_time_filters(range_, since, until)}  # fmt: skip
            data = await call(_dashboard_op(filters))
        except HTTPException as exc:
            return error_page(request, exc)
        days = data["day"]
        totals: dict[str, Any] = {
            k: sum(int(d.get(k) or 0) for d in days)
            for k in ("runs", "errors", "llm_calls", "input_tokens", "output_tokens")
        }
        totals["cost_usd"] = sum((Decimal(d.get("cost_usd") or 0) for d in days), Decimal(0))
        totals["unpriced"] = sum(int(d.get("cost_unknown_calls") or 0) for d in days)
        usd, tok = views.fmt_usd, views.fmt_tokens
        charts = {
            "model_cost": views.bar_chart(Series(data["model"], "cost_usd", usd)),
            "model_tokens": views.bar_chart(Series(data["model"], "total_tokens", tok)),
            "user_cost": views.bar_chart(Series(data["user"], "cost_usd", usd)),
            "user_tokens": views.bar_chart(Series(data["user"], "total_tokens", tok)),
            "day_cost": views.column_chart(Series(days, "cost_usd", usd)),
            "day_tokens": views.column_chart(Series(days, "total_tokens", tok)),
        }
        return render(
            request, "dashboard.html", data=data, totals=totals, charts=charts, form=form,
            stat_columns=views.STAT_COLUMNS, ranges=list(RANGES), nav="dashboard",
        )  # fmt: skip

    @router.get("/static/{name}", name="pgstore_ui_static")
    async def static(name: str) -> Response:
        if name not in assets:
            raise HTTPException(404, "no such asset")
        return Response(
            assets[name], media_type=STATIC[name], headers={"Cache-Control": "max-age=3600"}
        )

    return router
