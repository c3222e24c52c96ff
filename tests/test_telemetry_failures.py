"""Failure semantics of recording (issue 11): classify, isolate, cap, spill, replay, privacy."""

from __future__ import annotations

import logging
import operator
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import psycopg
import pytest
from langgraph.graph import START, StateGraph
from psycopg.conninfo import conninfo_to_dict
from test_telemetry_fakes import UsageChatModel

from langgraph_pgstore import Database
from langgraph_pgstore.errors import InvalidInput, translate_error
from langgraph_pgstore.telemetry import TelemetryWriter
from langgraph_pgstore.telemetry.events import RunEnd, RunStart
from langgraph_pgstore.telemetry.rows import MAX_KEY_CHARS
from langgraph_pgstore.telemetry.spill import SpilledRow
from langgraph_pgstore.telemetry.writer import is_transient


class S(TypedDict):
    x: Annotated[list[Any], operator.add]


LLM = UsageChatModel()


def one_node(fn: Any = None) -> Any:
    def node(state: S) -> dict[str, Any]:
        LLM.invoke("q")
        return {"x": ["answer"]}

    g = StateGraph(S)
    g.add_node("n", fn or node)
    g.add_edge(START, "n")
    return g.compile(name="one")


def _set_connections(server_admin: str, dbname: str, allow: bool) -> None:
    with psycopg.connect(server_admin, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                psycopg.sql.Identifier(dbname), psycopg.sql.SQL("true" if allow else "false")
            )
        )
        if not allow:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (dbname,),
            )


# --- classification ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("08006", True),  # connection failure
        ("57P01", True),  # admin shutdown (pg_terminate_backend)
        ("57P03", True),  # cannot connect now (starting up)
        ("40001", True),  # serialization failure
        ("40P01", True),  # deadlock
        ("55P03", True),  # lock timeout
        ("54000", False),  # program limit exceeded: an OperationalError, yet never retried
        ("54001", False),  # statement too complex
        ("22001", False),  # string too long
        ("22P02", False),  # invalid text representation
        ("23505", False),  # unique violation
        ("23514", False),  # check violation
        ("42501", False),  # insufficient privilege (RLS)
        ("42P01", False),  # undefined table
    ],
)
def test_is_transient_by_sqlstate(sqlstate: str, transient: bool) -> None:
    exc = psycopg.errors.lookup(sqlstate)("x")
    assert is_transient(exc) is transient
    wrapped = translate_error(exc)  # what _ops hands back
    assert wrapped is not None
    wrapped.__cause__ = exc
    assert is_transient(wrapped) is transient


def test_is_transient_without_sqlstate() -> None:
    assert is_transient(psycopg.OperationalError("connection refused"))
    assert is_transient(psycopg.InterfaceError("the connection is closed"))
    assert not is_transient(psycopg.DataError("NUL bytes"))
    assert not is_transient(ValueError("bug"))


# --- one odd value never stops recording ------------------------------------------------------


def test_4000_char_trace_id_is_capped_and_recording_goes_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: a 4,000-character trace_id exceeded the btree row limit (54000), the
    writer retried that batch forever and nothing was recorded afterwards."""
    graph = db.telemetry.instrument(one_node())
    huge = secrets.token_urlsafe(3000)[:4000]
    first, second = uuid.uuid4(), uuid.uuid4()
    graph.invoke({"x": []}, {"run_id": first, "metadata": {"trace_id": huge}})
    graph.invoke({"x": []}, {"run_id": second, "metadata": {"trace_id": huge + "-2"}})
    assert db.telemetry.flush(10)
    r1 = db.telemetry.get_run(first)["run"]
    r2 = db.telemetry.get_run(second)["run"]
    assert r1["status"] == r2["status"] == "success"
    assert len(r1["trace_id"]) == MAX_KEY_CHARS and r1["trace_id"].startswith(huge[:400])
    assert "…[sha256:" in r1["trace_id"] and r1["trace_id"] != r2["trace_id"]
    assert db.telemetry.rejected_events == 0 and db.telemetry.lost_events == 0


def test_program_limit_error_isolates_the_event(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Were an oversized value to reach the database anyway (here a spilled row, which is not
    capped again), the 54000 error is permanent: that row is rejected, the rest written."""
    writer = TelemetryWriter(db.url, db.settings.connect_kwargs())
    good, bad = uuid.uuid4(), uuid.uuid4()
    t = time.time()
    try:
        writer.enqueue(RunStart(good, "g", None, {}, None, False, t))
        writer._buffer.append(SpilledRow("runs", {"id": bad, "trace_id": secrets.token_hex(3000)}))
        writer._enqueued += 1
        writer.enqueue(RunEnd(good, "success", None, None, None, t))
        assert writer.flush(10)
    finally:
        writer.close()
    assert writer.rejected_events == 1
    assert "ProgramLimitExceeded [54000]" in caplog.text and str(bad) in caplog.text
    assert db.telemetry.get_run(good)["run"]["status"] == "success"


# --- exit with the server down: spill, then replay --------------------------------------------

SCRIPT = """
import sys, uuid
sys.path.insert(0, {tests!r})
from test_telemetry_failures import one_node
from langgraph_pgstore import Database
db = Database.open({url!r}, migrate=False)
graph = db.telemetry.instrument(one_node())
ids = [uuid.uuid4() for _ in range(5)]
for rid in ids:
    graph.invoke({{"x": []}}, {{"run_id": rid, "metadata": {{"user_id": "spill"}}}})
{outage}
print(" ".join(map(str, ids)))
# no flush, no close: the atexit hook finds the server down and spills
"""


def test_exit_with_server_down_spills_and_next_start_replays(
    db_url: str, server_url: str, tmp_path: Path
) -> None:
    spill_dir = tmp_path / "spill"
    dbname = conninfo_to_dict(db_url)["dbname"]
    outage = (
        "import psycopg\n"
        f"with psycopg.connect({server_url!r}, autocommit=True) as c:\n"
        f"    c.execute('ALTER DATABASE {dbname} ALLOW_CONNECTIONS false')\n"
        '    c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
        f"WHERE datname = '{dbname}'\")\n"
    )
    env = {**__import__("os").environ, "PGSTORE_TELEMETRY_SPILL_DIR": str(spill_dir)}
    script = SCRIPT.format(tests=str(Path(__file__).parent), url=db_url, outage=outage)
    try:
        out = subprocess.run(
            [sys.executable, "-c", script],
            check=True,
            timeout=120,
            capture_output=True,
            text=True,
            env=env,
        )
    finally:
        _set_connections(server_url, dbname, allow=True)
    ids = [uuid.UUID(x) for x in out.stdout.split()]
    files = list(spill_dir.glob("*.jsonl"))
    assert len(files) == 1, out.stderr
    assert files[0].stat().st_mode & 0o077 == 0  # readable by the owner only
    assert "spilled to" in out.stderr and "replayed on the next start" in out.stderr
    # next start: the spill is replayed into the same database
    with Database.connect(db_url, migrate=False) as db:
        db.telemetry.writer.spill_dir = spill_dir
        assert db.telemetry.writer.replay(20) == 15  # 5 runs, 5 steps, 5 calls
        assert db.telemetry.flush(10)
        for rid in ids:
            d = db.telemetry.get_run(rid)
            assert d["run"]["status"] == "success" and d["run"]["user_id"] == "spill"
            assert len(d["steps"]) == 1 and d["llm_calls"][0]["total_tokens"] == 120
        assert db.telemetry.status().replayed_rows == 15  # 5 runs, 5 steps, 5 calls
    assert not list(spill_dir.iterdir())


def test_spill_failure_is_counted_and_logged(
    db: Database, server_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spill directory should be")
    writer = TelemetryWriter(db.url, db.settings.connect_kwargs(), spill_dir=blocker / "spill")
    dbname = conninfo_to_dict(db.url)["dbname"]
    _set_connections(server_url, dbname, allow=False)
    try:
        t = time.time()
        for _ in range(3):
            rid = uuid.uuid4()
            writer.enqueue(RunStart(rid, "g", None, {}, None, False, t))
            writer.enqueue(RunEnd(rid, "success", None, None, None, t))
        assert not writer.close(timeout=1.0)
    finally:
        _set_connections(server_url, dbname, allow=True)
    assert writer.lost_events == 6
    assert "6 unwritten events lost at exit (spill failed" in caplog.text
    assert any(r.levelno == logging.WARNING and "lost at exit" in r.message for r in caplog.records)


def test_writer_thread_survives_outage_and_bad_exporter(
    db: Database, server_url: str, tmp_path: Path
) -> None:
    tel = db.telemetry
    tel.writer.spill_dir = tmp_path
    graph = tel.instrument(one_node())
    graph.invoke({"x": []})
    assert tel.flush(10)

    def broken_exporter(item: Any) -> None:
        raise RuntimeError("exporter bug")

    tel.writer.on_item = broken_exporter
    dbname = conninfo_to_dict(db.url)["dbname"]
    _set_connections(server_url, dbname, allow=False)
    try:
        for _ in range(5):
            graph.invoke({"x": []})
        assert not tel.flush(0.5)
        status = tel.status()
        assert status.alive and not status.connected and status.pending > 0
        assert status.last_error and "can't reach" in status.last_error
    finally:
        _set_connections(server_url, dbname, allow=True)
    assert tel.flush(30)
    status = tel.status()
    assert status.alive and status.connected and status.pending == 0
    assert len(tel.list_runs()["items"]) == 6


# --- privacy ---------------------------------------------------------------------------------

CARD = "4111 1111 1111 1111"


def _all_text(db: Database) -> str:
    with db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT (SELECT coalesce(json_agg(r)::text, '') FROM runs r) || "
            "(SELECT coalesce(json_agg(s)::text, '') FROM steps s) || "
            "(SELECT coalesce(json_agg(c)::text, '') FROM llm_calls c) AS t"
        ).fetchone()
    assert rows is not None
    return str(rows["t"])


def _private_graph() -> Any:
    def node(state: S) -> dict[str, Any]:
        LLM.invoke(f"my card is {state['x'][0]}")
        if "fail" in state["x"]:
            raise ValueError(f"card {state['x'][0]} declined")
        return {"x": [f"saved card {state['x'][0]}"]}

    return one_node(node)


def test_default_capture_stores_nothing_typed_or_answered(db: Database) -> None:
    graph = db.telemetry.instrument(_private_graph())
    rid, failed = uuid.uuid4(), uuid.uuid4()
    graph.invoke({"x": [CARD]}, {"run_id": rid, "metadata": {"user_id": "u"}})
    with pytest.raises(ValueError):
        graph.invoke({"x": [CARD, "fail"]}, {"run_id": failed})
    assert db.telemetry.flush(10)
    d = db.telemetry.get_run(rid)
    assert d["run"]["status"] == "success" and d["run"]["user_id"] == "u"
    assert d["llm_calls"][0]["total_tokens"] == 120  # usage and cost are still recorded
    f = db.telemetry.get_run(failed)
    assert f["run"]["error_type"] == "ValueError" and f["run"]["error_message"] is None
    text = _all_text(db)
    assert "4111" not in text and "saved card" not in text and "declined" not in text


def test_full_capture_stores_content(db: Database) -> None:
    graph = db.telemetry.instrument(_private_graph(), capture="full")
    graph.invoke({"x": [CARD]})
    assert db.telemetry.flush(10)
    assert CARD in _all_text(db) and "saved card" in _all_text(db)


def test_capture_none_records_nothing_and_bad_level_is_refused(db: Database) -> None:
    graph = db.telemetry.instrument(_private_graph(), capture="none")
    graph.invoke({"x": [CARD]})
    assert db.telemetry.flush(10)
    assert db.telemetry.list_runs()["items"] == []
    with pytest.raises(InvalidInput, match="capture must be one of"):
        db.telemetry.instrument(_private_graph(), capture="everything")  # type: ignore[arg-type]


async def test_aflush_times_out_while_the_server_refuses(
    adb: Any, server_url: str, tmp_path: Path
) -> None:
    """Both hubs' flush takes a timeout (the async one waits in a worker thread)."""
    tel = adb.telemetry
    tel.writer.spill_dir = tmp_path
    graph = tel.instrument(one_node())
    dbname = conninfo_to_dict(adb.url)["dbname"]
    _set_connections(server_url, dbname, allow=False)
    try:
        await graph.ainvoke({"x": []})
        t0 = time.monotonic()
        assert await tel.aflush(0.3) is False
        assert time.monotonic() - t0 < 2
    finally:
        _set_connections(server_url, dbname, allow=True)
    assert await tel.aflush(30)
    assert len((await tel.alist_runs())["items"]) == 1


def test_a_tenants_spilled_events_replay_under_its_tenant(
    db: Database, app_url: str, server_url: str, tmp_path: Path
) -> None:
    """Row-level security on: a tenant's events spilled at exit are replayed by a process with
    no tenant of its own, written under the tenant they were recorded for (and owned by it)."""
    dbname = conninfo_to_dict(db.url)["dbname"]
    ids = [uuid.uuid4() for _ in range(3)]
    with Database.connect(app_url, tenant="alice", max_size=2) as alice:
        alice.telemetry.writer.spill_dir = tmp_path
        graph = alice.telemetry.instrument(one_node())
        _set_connections(server_url, dbname, allow=False)
        try:
            for rid in ids:
                graph.invoke({"x": []}, {"run_id": rid, "metadata": {"user_id": "alice"}})
            assert not alice.telemetry.close(timeout=1.0)
            assert alice.telemetry.status().spilled_events == 3 * 6  # run, step, call: start+end
        finally:
            _set_connections(server_url, dbname, allow=True)
    with Database.connect(app_url, max_size=2) as nobody:
        nobody.telemetry.writer.spill_dir = tmp_path
        assert nobody.telemetry.writer.replay(20) == 9
        assert nobody.telemetry.flush(10) and nobody.telemetry.rejected_events == 0
        assert nobody.telemetry.list_runs()["items"] == []  # no tenant: sees no owned rows
    with db.pool.connection() as conn:
        rows = conn.execute(
            "SELECT r.owner_id, r.status, (SELECT count(*) FROM steps s WHERE s.run_id = r.id"
            " AND s.owner_id = 'alice') AS steps, (SELECT count(*) FROM llm_calls c"
            " WHERE c.run_id = r.id AND c.owner_id = 'alice') AS calls"
            " FROM runs r WHERE r.id = ANY(%s)",
            (ids,),
        ).fetchall()
    assert [(r["owner_id"], r["status"], r["steps"], r["calls"]) for r in rows] == [
        ("alice", "success", 1, 1)
    ] * 3
