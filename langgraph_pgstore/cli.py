"""The ``langgraph-pgstore`` command: migrate, doctor, tenancy, runs, sessions, purge-user,
export-user, sweep, embedded, serve.

Human output by default, ``--json`` for scripts: the same JSON as the HTTP API's (each
command serialises the library's record types with pydantic, as the routes do). Exit codes: 0
success, 1 unhealthy (``doctor``) or declined, 2 a clear error (bad input, unknown id, server
unreachable). Errors go to stderr as one red line, never a traceback, never a password; stored
text is printed literally, never read as markup.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypedDict, TypeVar

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from . import ownership
from ._ops import Op, run
from .config import Settings, redact_dsn
from .connection import Endpoint
from .conversations import ops as conv
from .conversations.models import Message, Session
from .database import Database
from .errors import DatabaseUnavailable, InvalidInput, PgStoreError
from .health import HealthReport
from .paging import MAX_LIMIT, Page
from .telemetry import queries as tq
from .telemetry.records import GroupStats, Run, RunDetail, RunStats
from .telemetry.trace import Span, build_trace
from .tenancy import require_admin
from .ui.views import fmt_usd

__all__ = ["app", "main"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

app = typer.Typer(
    help="One PostgreSQL database for everything a LangGraph agent remembers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # a traceback with locals could show a DSN
    add_completion=False,
)
embedded_app = typer.Typer(help="The embedded PostgreSQL server.", no_args_is_help=True)
runs_app = typer.Typer(help="Recorded runs (telemetry).", no_args_is_help=True)
sessions_app = typer.Typer(help="Conversation sessions.", no_args_is_help=True)
app.add_typer(embedded_app, name="embedded")
app.add_typer(runs_app, name="runs")
app.add_typer(sessions_app, name="sessions")

# No markup: whatever we print (stored text, names, URLs) is shown as it is; styles are Text's.
out = Console(markup=False)
err = Console(stderr=True, markup=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
LimitOpt = Annotated[int, typer.Option(min=1, max=MAX_LIMIT, help="Page size.")]
CursorOpt = Annotated[
    str | None, typer.Option(help="Continue after a previous page's next_cursor.")
]
TIME_HELP = "ISO date or time (no zone: UTC), or an age: 30m, 24h, 7d."
SinceOpt = Annotated[str | None, typer.Option(help=f"Runs started at or after this. {TIME_HELP}")]
UntilOpt = Annotated[str | None, typer.Option(help=f"Runs started before this. {TIME_HELP}")]
RunRef = Annotated[
    str, typer.Argument(help="A run id, an unambiguous id prefix, or a thread id (its newest run).")
]
SessionRef = Annotated[
    str, typer.Argument(help="A session id, an unambiguous id prefix, or its thread id.")
]


@dataclass
class _State:
    url: str | None = None


state = _State()


@app.callback()
def _global(
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="PostgreSQL URL; default DATABASE_URL, else the embedded server.",
            show_default=False,
        ),
    ] = None,
) -> None:
    state.url = url
    # Our errors say it once; the pool's own retry warnings would only repeat it.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)


# -- plumbing -----------------------------------------------------------------------------


def _print_json(value: Any, kind: Any = Any) -> None:
    """``value`` as JSON, serialised as its type ``kind`` (the HTTP API's serialisation)."""
    raw = TypeAdapter(kind).dump_json(value, fallback=_fallback).decode()
    out.print_json(raw, highlight=False)


def _fallback(value: Any) -> Any:
    return float(value) if isinstance(value, Decimal) else str(value)


def _fail(message: str, code: int = 2) -> typer.Exit:
    line = " ".join(redact_dsn(message).split())  # one line, whatever the driver said
    err.print(Text(f"error: {line}", style="red"), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn our errors into one stderr line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except PgStoreError as exc:
            raise _fail(str(exc)) from None

    return wrapper


@contextmanager
def _db() -> Iterator[Database]:
    """Open the database without migrating: commands other than ``migrate`` never do DDL.

    A configured server is first tried with one plain connection, so an unreachable one
    fails at once (or after the connect timeout) rather than after the pool's retries.
    """
    settings = Settings.resolve(state.url)
    if settings.url:
        Endpoint(settings, settings.url).connect().close()
    with Database.connect(state.url, migrate=False, min_size=1, max_size=2) as db:
        yield db


def _run(op: Op[T]) -> T:
    with _db() as db:
        return run(db.pool, op)


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _when(value: str | None, name: str) -> datetime | None:
    """``--since``/``--until``: an ISO date or time (no zone: UTC), or an age (``24h``)."""
    if value is None:
        return None
    if match := _AGE.fullmatch(value.strip()):
        amount, unit = match.groups()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: float(amount)})
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--{name} must be an ISO date or time, or an age such as 24h, not {value!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _fmt(value: Any, column: str = "") -> str:
    if value is None:
        return "-"
    if column == "cost_usd":
        return fmt_usd(value)
    if column.endswith("_ms"):
        return f"{float(value):,.1f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float | Decimal):
        return f"{float(value):,.2f}"
    return str(value)


#: Short column headers, so tables fit an 80-column terminal.
LABELS = {
    "duration_ms": "ms", "latency_ms": "ms", "graph_name": "graph", "thread_id": "thread",
    "started_at": "started", "updated_at": "updated", "message_count": "msgs",
    "owner_id": "user", "input_tokens": "in", "output_tokens": "out",
    "total_tokens": "tokens", "cost_usd": "usd", "cost_unknown_calls": "unpriced",
    "llm_calls": "calls", "request_model": "model", "step_number": "#", "node_name": "node",
}  # fmt: skip


def _duration_ms(row: dict[str, Any]) -> float | None:
    start, end = row.get("started_at"), row.get("completed_at")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds() * 1000
    return None


def _cell(row: dict[str, Any], column: str) -> Text:
    """One cell: stored text as plain ``Text`` (never markup), an error status in red."""
    value = row.get(column)
    style = "bold red" if column == "status" and value == "error" else ""
    return Text(_fmt(value, column), style=style)


def _table(title: str | None, columns: list[str], rows: list[Any]) -> Table:
    rows = [r.model_dump() if hasattr(r, "model_dump") else dict(r) for r in rows]
    if "duration_ms" in columns:
        rows = [{"duration_ms": _duration_ms(r), **r} for r in rows]
    table = Table(title=title, show_lines=False)
    for col in columns:
        # Ids stay whole so they can be copied into the next command.
        ident = col in ("id", "key", "request_model")
        right = col.endswith(("_ms", "_tokens", "_usd", "_count", "_calls")) or col in (
            "runs", "errors", "steps", "llm_calls",
        )  # fmt: skip
        table.add_column(
            LABELS.get(col, col),
            no_wrap=ident,
            min_width=36 if col == "id" else None,
            justify="right" if right else "left",
        )
    for row in rows:
        table.add_row(*(_cell(row, c) for c in columns))
    return table


# -- migrate, doctor ----------------------------------------------------------------------


@app.command()
@cli_errors
def migrate(json_out: JsonOpt = False) -> None:
    """Create or upgrade the checkpoint tables and ours (safe to run concurrently)."""
    with _db() as db:
        with err.status("migrating…"):
            revision = db.migrate()
        if json_out:
            _print_json({"url": db.redacted_url, "revision": revision})
        else:
            out.print(
                f"{db.redacted_url} is at revision {revision}", highlight=False, soft_wrap=True
            )


def _report_table(report: HealthReport) -> Table:
    table = Table(title="langgraph-pgstore doctor", show_header=False)
    table.add_column("check")
    table.add_column("value")
    table.add_row("status", Text("healthy", "green") if report.ok else Text("unhealthy", "red"))
    table.add_row("url", Text(report.url))
    table.add_row("server", _fmt(report.server_version))
    table.add_row("database", _fmt(report.database))
    table.add_row("latency ms", _fmt(report.latency_ms, "latency_ms"))
    table.add_row("revision", f"{_fmt(report.revision)} (head {report.head})")
    table.add_row("checkpoint version", _fmt(report.checkpoint_version))
    table.add_row("checked at", _fmt(report.checked_at))
    table.add_row("tenancy", _fmt(report.tenancy))
    admin = " (admin: bypasses row-level security)" if report.admin else ""
    table.add_row("role", _fmt(report.user) + admin)
    for name, ext in sorted(report.extensions.items()):
        if ext.get("installed"):
            verdict = f"{ext['installed']} installed"
        else:
            verdict = f"not installed ({_fmt(ext.get('available'))} available)"
        table.add_row(f"extension {name}", verdict)
    if report.pool:
        figures = ", ".join(f"{k}={v}" for k, v in report.pool.items() if k.startswith("pool"))
        table.add_row("pool", figures)
    for problem in report.problems:
        table.add_row(Text("problem", "yellow"), Text(problem))
    return table


@app.command()
@cli_errors
def doctor(json_out: JsonOpt = False) -> None:
    """Check the database; exit code 1 when it is unhealthy."""
    try:
        with _db() as db:
            report = db.health()
    except DatabaseUnavailable as exc:
        url = redact_dsn(state.url or Settings.resolve().url)
        report = HealthReport(ok=False, url=url, problems=[str(exc)])
    if json_out:
        from .api.models import Health  # pydantic only: no FastAPI needed

        verdict = "healthy" if report.ok else "unhealthy"
        _print_json({"status": verdict, **report.to_dict()}, Health)
    else:
        out.print(_report_table(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@cli_errors
def tenancy(
    action: Annotated[str, typer.Argument(help="on, off or status.")] = "status",
    json_out: JsonOpt = False,
) -> None:
    """Row-level security on every owned table: on (each tenant sees only its rows; a
    connection acting for no tenant only shared ones), off, or show the status."""
    if action not in ("on", "off", "status"):
        raise _fail(f"expected on, off or status, not {action!r}")
    with _db() as db:
        state = db.tenancy_state() if action == "status" else db.set_tenancy(action == "on")
        role, admin = db.role, db.bypasses_rls
    if json_out:
        _print_json({"tenancy": state, "role": role, "admin": admin})
    else:
        note = " (admin: bypasses row-level security)" if admin else ""
        out.print(f"tenancy {state}; role {role}{note}", highlight=False)


# -- embedded -----------------------------------------------------------------------------

DataDirOpt = Annotated[
    Path | None,
    typer.Option(help="Data directory (default PGSTORE_DATA_DIR or the per-user one)."),
]


def _data_dir(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else Settings().data_dir


@embedded_app.command("start")
@cli_errors
def embedded_start(data_dir: DataDirOpt = None, json_out: JsonOpt = False) -> None:
    """Start the embedded server and leave it running; prints its URL."""
    from .embedded import EmbeddedServer

    with err.status("starting the embedded PostgreSQL…"):
        server = EmbeddedServer.start(_data_dir(data_dir), keep_running=True)
    url = redact_dsn(server.url)
    if json_out:
        _print_json({"running": True, "data_dir": str(server.data_dir), "url": url})
    else:
        out.print(url, highlight=False, soft_wrap=True)


@embedded_app.command("stop")
@cli_errors
def embedded_stop(data_dir: DataDirOpt = None, json_out: JsonOpt = False) -> None:
    """Stop the embedded server, whoever started it."""
    from .embedded import stop_embedded

    stopped = stop_embedded(_data_dir(data_dir))
    if json_out:
        _print_json({"stopped": stopped})
    else:
        out.print("stopped" if stopped else "not running")


@embedded_app.command("status")
@cli_errors
def embedded_status_cmd(data_dir: DataDirOpt = None, json_out: JsonOpt = False) -> None:
    """Whether the embedded server runs (never starts it)."""
    from .embedded import embedded_status

    status = embedded_status(_data_dir(data_dir))
    status["url"] = redact_dsn(status["url"]) if status["url"] else None
    if json_out:
        _print_json(status)
        return
    if status["running"]:
        out.print(f"running (pid {status['pid']}): {status['url']}", highlight=False)
    else:
        init = "initialized" if status["initialized"] else "not initialized"
        out.print(f"not running ({init}, {status['data_dir']})", highlight=False)


# -- runs ---------------------------------------------------------------------------------

RUN_COLUMNS = ["id", "status", "graph_name", "thread_id", "started_at", "duration_ms"]
STEP_COLUMNS = ["step_number", "node_name", "kind", "status", "started_at", "duration_ms"]
CALL_COLUMNS = [
    "request_model", "status", "input_tokens", "output_tokens", "cost_usd", "latency_ms",
]  # fmt: skip
GROUP_COLUMNS = ["key", "runs", "errors", "llm_calls", "input_tokens", "output_tokens",
                 "cost_usd", "cost_unknown_calls"]  # fmt: skip
GroupByOpt = Annotated[tq.GroupBy, typer.Option(help="Group totals by this.")]


def _print_page(page: Page[Any], kind: Any, title: str, columns: list[str], json_out: bool) -> None:
    """A page as JSON (of type ``kind``), or as a table with the next page's option."""
    if json_out:
        _print_json(page, kind)
        return
    out.print(_table(title, columns, page["items"]))
    if page["next_cursor"]:
        out.print(f"next page: --cursor {page['next_cursor']}", highlight=False, soft_wrap=True)


@runs_app.command("list")
@cli_errors
def runs_list(
    limit: LimitOpt = 20,
    cursor: CursorOpt = None,
    status: Annotated[str | None, typer.Option(help="running, success, error, …")] = None,
    graph: Annotated[str | None, typer.Option(help="Graph name.")] = None,
    thread: Annotated[str | None, typer.Option(help="LangGraph thread_id.")] = None,
    user: Annotated[str | None, typer.Option(help="User id.")] = None,
    trace_id: Annotated[str | None, typer.Option(help="Trace id.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Idempotency key.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recorded runs, newest first."""
    page = _run(
        tq.list_runs(
            limit=limit, cursor=cursor, status=status, graph_name=graph, thread_id=thread,
            user_id=user, trace_id=trace_id, idempotency_key=idempotency_key,
            since=_when(since, "since"), until=_when(until, "until"),
        )
    )  # fmt: skip
    _print_page(page, Page[Run], "runs", RUN_COLUMNS, json_out)


class RunShow(RunDetail):
    """``runs show --json``: the run (``GET /runs/{id}``), its stats and cost per model."""

    stats: RunStats
    models: list[GroupStats]


def _run_details(ref: str) -> Op[RunShow]:
    run_id = yield from tq.resolve_run(ref)
    detail = yield from tq.get_run(run_id)
    stats = yield from tq.run_stats(run_id)
    models = yield from tq.stats("model", run_id=run_id)
    return RunShow(**detail, stats=stats, models=models)


@runs_app.command("show")
@cli_errors
def runs_show(
    run_ref: RunRef,
    tree: Annotated[
        bool, typer.Option("--tree", help="The trace tree: nodes, tools and LLM calls nested.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """One run with its step timeline and LLM calls."""
    details = _run(_run_details(run_ref))
    if json_out:
        _print_json(details, RunShow)
        return
    run_row = details["run"]
    head = _table(
        f"run {run_row['id']}", [*RUN_COLUMNS[1:4], "user_id", *RUN_COLUMNS[4:]], [run_row]
    )
    out.print(head)
    if run_row.get("error_message"):
        line = Text(str(run_row["error_type"]), style="bold red")
        out.print(line.append(f": {run_row['error_message']}", style="red"))
    if tree:
        out.print(_trace_tree(build_trace(run_row, details["steps"], details["llm_calls"])))
        return
    out.print(_table("steps", STEP_COLUMNS, details["steps"]))
    out.print(_table("llm calls", CALL_COLUMNS, details["llm_calls"]))
    _print_stats(details["stats"], details["models"])


def _span_label(span: Span) -> Text:
    """One line per span; stored text goes in as plain ``Text``, never parsed as markup."""
    from .ui.views import fmt_ms, fmt_tokens

    label = Text(span.name, style="bold" if span.kind in ("run", "node") else "")
    label.append(f" {span.kind}", style="dim")
    if span.provider:
        label.append(f" ({span.provider})", style="dim")
    label.append(f"  {span.status}", style="red bold" if span.failed else "green")
    duration = span.latency_ms if span.kind == "llm" and span.latency_ms else span.duration_ms
    label.append(f"  {fmt_ms(duration)}")
    if span.llm_calls:
        label.append(
            f"  {fmt_tokens(span.input_tokens)} in / {fmt_tokens(span.output_tokens)} out"
            f"  {fmt_usd(span.cost_usd)}" + ("*" if span.unpriced_calls else ""),
            style="cyan",
        )
    if span.kind != "run" and (span.error_type or span.error_message):
        label.append(f"\n{span.error_type or 'error'}: {span.error_message or ''}", style="red")
    return label


def _trace_tree(root: Span) -> Tree:
    tree = Tree(_span_label(root))
    branches = {root.id: tree}
    for _, span in root.walk():
        for child in span.children:
            branches[child.id] = branches[span.id].add(_span_label(child))
    return tree


def _print_stats(stats: RunStats, models: list[GroupStats] | None = None) -> None:
    keys = ["step_count", "tool_calls", "llm_calls", "input_tokens", "output_tokens",
            "total_tokens", "cost_usd", "cost_unknown_calls", "duration_ms"]  # fmt: skip
    totals = Table(title="totals", show_header=False)
    totals.add_column("figure")
    totals.add_column("value", justify="right")
    for key in keys:
        totals.add_row(key, _fmt(stats.get(key), key))
    out.print(totals)
    if models:
        columns = ["key", "llm_calls", "total_tokens", "cost_usd"]
        out.print(_table("by model", columns, models))


@runs_app.command("stats")
@cli_errors
def runs_stats(
    run_ref: Annotated[
        str | None, typer.Argument(help="One run (id, id prefix or thread); omit for totals.")
    ] = None,
    by: GroupByOpt = "session",
    since: SinceOpt = None,
    until: UntilOpt = None,
    user: Annotated[str | None, typer.Option(help="Only this user's runs.")] = None,
    thread: Annotated[str | None, typer.Option(help="Only this thread's runs.")] = None,
    graph: Annotated[str | None, typer.Option(help="Only this graph's runs.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Token, cost and duration totals: of one run, or grouped over all runs."""
    if run_ref is not None:
        details = _run(_run_details(run_ref))
        if json_out:
            _print_json(details["stats"], RunStats)
        else:
            _print_stats(details["stats"], details["models"])
        return
    groups = _run(
        tq.stats(
            by, user_id=user, thread_id=thread, graph_name=graph,
            since=_when(since, "since"), until=_when(until, "until"),
        )
    )  # fmt: skip
    if json_out:
        _print_json(groups, list[GroupStats])
        return
    out.print(_table(f"totals by {by}", GROUP_COLUMNS, groups))


# -- sessions -----------------------------------------------------------------------------

SESSION_COLUMNS = ["id", "thread_id", "owner_id", "title", "status", "message_count",
                   "updated_at"]  # fmt: skip


@sessions_app.command("list")
@cli_errors
def sessions_list(
    limit: LimitOpt = 20,
    cursor: CursorOpt = None,
    status: Annotated[conv.SessionStatus | None, typer.Option(help="Session status.")] = None,
    user: Annotated[str | None, typer.Option(help="Owner (external user id).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Sessions, most recently updated first."""
    page = _run(conv.list_sessions(user, status=status, limit=limit, cursor=cursor))
    _print_page(page, Page[Session], "sessions", SESSION_COLUMNS, json_out)


class SessionShow(TypedDict):
    """``sessions show --json``: ``GET /sessions/{id}`` and ``/sessions/{id}/messages``."""

    session: Session
    messages: Page[Message]


def _session_details(ref: str, limit: int, cursor: str | None, last: bool) -> Op[SessionShow]:
    session_id = yield from conv.resolve_session(ref)
    session = yield from conv.get_session(session_id)
    page = yield from conv.list_messages(session_id, limit=limit, cursor=cursor, last=last)
    return SessionShow(session=session, messages=page)


@sessions_app.command("show")
@cli_errors
def sessions_show(
    session_ref: SessionRef,
    limit: LimitOpt = 100,
    cursor: CursorOpt = None,
    last: Annotated[bool, typer.Option("--last", help="The newest messages.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """One session and its messages, in order."""
    details = _run(_session_details(session_ref, limit, cursor, last))
    if json_out:
        _print_json(details, SessionShow)
        return
    session = details["session"]
    out.print(_table(f"session {session.id}", SESSION_COLUMNS[1:], [session]))
    for msg in details["messages"]["items"]:
        who = Text(msg.role + (f" ({msg.name})" if msg.name else ""), style="bold")
        out.print(who.append(": " + msg.content, style=""), highlight=False)
    if details["messages"]["next_cursor"]:
        nxt = details["messages"]["next_cursor"]
        out.print(f"more: --cursor {nxt}", highlight=False, soft_wrap=True)


# -- purge-user, export-user, sweep (maintenance: the admin path) --------------------------


@app.command("purge-user")
@cli_errors
def purge_user(
    user: Annotated[str, typer.Argument(help="The user's external id (their user_id).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask for confirmation.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Delete every row the user owns: sessions, messages, checkpoints, memories, runs
    (erasure). Admin path: a role that bypasses row-level security, or tenancy off.

    The rows are deleted in a transaction that is committed only once confirmed, so the
    question shows what goes (and an unknown user is said before any question)."""
    with _db() as db, db.transaction() as conn:
        with err.status("counting…"):
            counts = run(conn, ownership.purge_user(user), transaction=False)
        summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        if not yes and not typer.confirm(f"Delete {summary} owned by user {user!r}?", err=True):
            raise typer.Exit(1)  # leaves the transaction: rolled back
    if json_out:
        _print_json(counts)
    else:
        out.print(f"{summary} deleted", highlight=False)


@app.command("export-user")
@cli_errors
def export_user(
    user: Annotated[str, typer.Argument(help="The user's external id (their user_id).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Everything held about a user as JSON, checkpoints decoded (the right of access).
    Admin path: a role that bypasses row-level security, or tenancy off."""
    with _db() as db:
        data = db.export_user(user)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        sys.stdout.write(text + "\n")
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err.print(f"wrote {output}", highlight=False)


@app.command()
@cli_errors
def sweep(
    runs_older_than: Annotated[
        float | None,
        typer.Option(help="Also delete finished runs older than this many days."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Delete expired memory items (TTL) and, with --runs-older-than, old runs. Admin path:
    a role that bypasses row-level security, or tenancy off."""
    result: dict[str, int] = {}
    with _db() as db, err.status("sweeping…"):
        run(db.pool, require_admin("sweep"))
        result["memory_items"] = db.store.sweep_ttl()
        if runs_older_than is not None:
            result["runs"] = run(db.pool, tq.purge_runs_older_than(runs_older_than))
    if json_out:
        _print_json(result)
    else:
        out.print(", ".join(f"{v} {k}" for k, v in result.items()) + " deleted")


# -- serve --------------------------------------------------------------------------------


@app.command()
@cli_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    ui: Annotated[bool, typer.Option(help="Serve the web UI at /ui/.")] = True,
) -> None:
    """Run the HTTP API (runs, sessions, health) and web UI with uvicorn. Unauthenticated:
    bind wisely."""
    import uvicorn

    from .api import create_app

    if ui:
        err.print(f"web UI: http://{host}:{port}/ui/", highlight=False)
    uvicorn.run(create_app(state.url, ui=ui), host=host, port=port)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
