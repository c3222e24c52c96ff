"""The ``langgraph-pgstore`` command: migrate, doctor, tenancy, runs, sessions, purge-user,
export-user, sweep, embedded, serve.

Human output by default, ``--json`` for scripts. Exit codes: 0 success, 1 unhealthy
(``doctor``), 2 a clear error (bad input, unknown id, server unreachable). Errors go to
stderr as one line, never a traceback, never a password.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar
from uuid import UUID

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ._ops import Op, run
from .api import queries
from .config import Settings, redact_dsn
from .database import Database
from .errors import DatabaseUnavailable, PgStoreError
from .health import HealthReport
from .telemetry.trace import Span, build_trace
from .tenancy import require_admin

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

out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
LimitOpt = Annotated[int, typer.Option(min=1, max=queries.MAX_LIMIT, help="Page size.")]
CursorOpt = Annotated[
    str | None, typer.Option(help="Continue after a previous page's next_cursor.")
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


# -- plumbing -----------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID | Path):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=_json_default))


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(redact_dsn(message))}", highlight=False)
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
    """Open the database without migrating: commands other than ``migrate`` never do DDL."""
    # min_size=1: opening waits for one connection at most connect_timeout, so an
    # unreachable server fails fast instead of after the pool's checkout timeout.
    with Database.connect(state.url, migrate=False, min_size=1, max_size=2) as db:
        yield db


def _run(op: Op[T]) -> T:
    with _db() as db:
        return run(db.pool, op)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%m-%d %H:%M:%S")
    if isinstance(value, float | Decimal):
        return f"{float(value):.6g}"
    return str(value)


#: Short column headers, so tables fit an 80-column terminal.
LABELS = {
    "duration_ms": "ms", "latency_ms": "ms", "graph_name": "graph", "thread_id": "thread",
    "started_at": "started", "updated_at": "updated", "message_count": "msgs",
    "user_external_id": "user", "input_tokens": "in", "output_tokens": "out",
    "total_tokens": "tokens", "cost_usd": "usd", "cost_unknown_calls": "unpriced",
    "llm_calls": "calls", "request_model": "model", "step_number": "#", "node_name": "node",
}  # fmt: skip


def _duration_ms(row: dict[str, Any]) -> float | None:
    start, end = row.get("started_at"), row.get("completed_at")
    if isinstance(start, datetime) and isinstance(end, datetime):
        return (end - start).total_seconds() * 1000
    return None


def _table(title: str | None, columns: list[str], rows: list[dict[str, Any]]) -> Table:
    if "duration_ms" in columns:
        rows = [{"duration_ms": _duration_ms(r), **r} for r in rows]
    table = Table(title=title, show_lines=False)
    for col in columns:
        # Ids stay whole so they can be copied into the next command.
        ident = col in ("id", "key", "request_model")
        table.add_column(LABELS.get(col, col), no_wrap=ident, min_width=36 if col == "id" else None)
    for row in rows:
        table.add_row(*(Text(_fmt(row.get(c))) for c in columns))  # data, never markup
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
    verdict = "[green]healthy[/green]" if report.ok else "[red]unhealthy[/red]"
    table.add_row("status", verdict)
    table.add_row("url", Text(report.url))
    table.add_row("server", _fmt(report.server_version))
    table.add_row("database", _fmt(report.database))
    table.add_row("latency ms", _fmt(report.latency_ms))
    table.add_row("revision", f"{_fmt(report.revision)} (head {report.head})")
    table.add_row("checkpoint version", _fmt(report.checkpoint_version))
    table.add_row("tenancy", _fmt(report.tenancy))
    admin = " (admin: bypasses row-level security)" if report.admin else ""
    table.add_row("role", _fmt(report.user) + admin)
    for name, ext in sorted(report.extensions.items()):
        table.add_row(f"extension {name}", _fmt(ext.get("installed")) + " installed")
    if report.pool:
        figures = ", ".join(f"{k}={v}" for k, v in report.pool.items() if k.startswith("pool"))
        table.add_row("pool", figures)
    for problem in report.problems:
        table.add_row("[yellow]problem[/yellow]", Text(problem))
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
        _print_json({"status": "healthy" if report.ok else "unhealthy", **report.to_dict()})
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


def _print_page(page: queries.Page, columns: list[str], title: str) -> None:
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
    json_out: JsonOpt = False,
) -> None:
    """Recorded runs, newest first."""
    page = _run(
        queries.list_runs(
            limit=limit, cursor=cursor, status=status, graph_name=graph, thread_id=thread,
            user_id=user,
        )
    )  # fmt: skip
    if json_out:
        _print_json(page)
    else:
        _print_page(page, RUN_COLUMNS, "runs")


def _run_details(run_id: str) -> Op[dict[str, Any]]:
    detail = yield from queries.get_run(run_id)
    detail["stats"] = yield from queries.run_stats(detail["run"]["id"])
    return detail


@runs_app.command("show")
@cli_errors
def runs_show(
    run_id: str,
    tree: Annotated[
        bool, typer.Option("--tree", help="The trace tree: nodes, tools and LLM calls nested.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """One run with its step timeline and LLM calls."""
    details = _run(_run_details(run_id))
    if json_out:
        _print_json(details)
        return
    run_row = details["run"]
    head = _table(
        f"run {run_row['id']}", [*RUN_COLUMNS[1:4], "user_id", *RUN_COLUMNS[4:]], [run_row]
    )
    out.print(head)
    if run_row.get("error_message"):
        error_type, message = escape(str(run_row["error_type"])), escape(run_row["error_message"])
        out.print(f"[red]{error_type}[/red]: {message}", highlight=False)
    if tree:
        out.print(_trace_tree(build_trace(run_row, details["steps"], details["llm_calls"])))
        return
    out.print(_table("steps", STEP_COLUMNS, details["steps"]))
    out.print(_table("llm calls", CALL_COLUMNS, details["llm_calls"]))
    _print_stats(details["stats"])


def _span_label(span: Span) -> Text:
    """One line per span; stored text goes in as plain ``Text``, never parsed as markup."""
    from .ui.views import fmt_ms, fmt_tokens, fmt_usd

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


def _print_stats(stats: dict[str, Any]) -> None:
    keys = ["step_count", "tool_calls", "llm_calls", "input_tokens", "output_tokens",
            "total_tokens", "cost_usd", "cost_unknown_calls", "duration_ms"]  # fmt: skip
    totals = Table(title="totals", show_header=False)
    totals.add_column("figure")
    totals.add_column("value", justify="right")
    for key in keys:
        totals.add_row(key, _fmt(stats.get(key)))
    out.print(totals)
    if stats["models"]:
        out.print(
            _table("by model", ["model", "calls", "total_tokens", "cost_usd"], stats["models"])
        )


@runs_app.command("stats")
@cli_errors
def runs_stats(
    run_id: Annotated[str | None, typer.Argument(help="One run; omit for grouped totals.")] = None,
    by: Annotated[
        str, typer.Option(help="Group totals by session, user, graph, model or day.")
    ] = "session",
    user: Annotated[str | None, typer.Option(help="Only this user's runs.")] = None,
    thread: Annotated[str | None, typer.Option(help="Only this thread's runs.")] = None,
    graph: Annotated[str | None, typer.Option(help="Only this graph's runs.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Token, cost and duration totals: of one run, or grouped over all runs."""
    if run_id is not None:
        stats = _run(queries.run_stats(run_id))
        if json_out:
            _print_json(stats)
        else:
            _print_stats(stats)
        return
    groups = _run(queries.grouped_stats(by, user_id=user, thread_id=thread, graph_name=graph))
    if json_out:
        _print_json(groups)
        return
    cols = ["key", "runs", "errors", "llm_calls", "input_tokens", "output_tokens", "cost_usd",
            "cost_unknown_calls"]  # fmt: skip
    out.print(_table(f"totals by {by}", cols, groups))


# -- sessions -----------------------------------------------------------------------------

SESSION_COLUMNS = ["id", "thread_id", "user_external_id", "title", "status", "message_count",
                   "updated_at"]  # fmt: skip


@sessions_app.command("list")
@cli_errors
def sessions_list(
    limit: LimitOpt = 20,
    cursor: CursorOpt = None,
    status: Annotated[str | None, typer.Option(help="active or archived.")] = None,
    user: Annotated[str | None, typer.Option(help="Owner (external user id).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Sessions, most recently updated first."""
    page = _run(queries.list_sessions(limit=limit, cursor=cursor, status=status, user_id=user))
    if json_out:
        _print_json(page)
    else:
        _print_page(page, SESSION_COLUMNS, "sessions")


def _session_details(session_id: str, limit: int, cursor: str | None) -> Op[dict[str, Any]]:
    session = yield from queries.get_session(session_id)
    page = yield from queries.list_messages(session["id"], limit=limit, cursor=cursor)
    return {"session": session, "messages": page}


@sessions_app.command("show")
@cli_errors
def sessions_show(
    session_id: str, limit: LimitOpt = 100, cursor: CursorOpt = None, json_out: JsonOpt = False
) -> None:
    """One session and its messages, in order."""
    details = _run(_session_details(session_id, limit, cursor))
    if json_out:
        _print_json(details)
        return
    session = details["session"]
    out.print(_table(f"session {session['id']}", SESSION_COLUMNS[1:], [session]))
    for msg in details["messages"]["items"]:
        who = msg["role"] + (f" ({msg['name']})" if msg.get("name") else "")
        out.print(f"[bold]{escape(who)}[/bold]: ", end="")
        out.print(msg["content"], markup=False, highlight=False)
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
    (erasure). Admin path: a role that bypasses row-level security, or tenancy off."""
    if not yes and not typer.confirm(f"Delete every row owned by user {user!r}?"):
        raise typer.Exit(1)
    with _db() as db, err.status("purging…"):
        counts = db.purge_user(user)
    if json_out:
        _print_json(counts)
    else:
        out.print(", ".join(f"{v} {k}" for k, v in counts.items() if v) + " deleted")


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
        result["memory_items"] = _sweep_memory(db)
        if runs_older_than is not None:
            op = queries.purge_runs_older_than(runs_older_than)
            result["runs"] = run(db.pool, op)
    if json_out:
        _print_json(result)
    else:
        out.print(", ".join(f"{v} {k}" for k, v in result.items()) + " deleted")


def _sweep_memory(db: Database) -> int:
    """The memory store's TTL sweep (items whose ``expires_at`` has passed)."""
    return db.store.sweep_ttl()


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
