"""The ``langgraph-pgstore`` command against the real database: every case runs the installed
console script in its own process, as a person at a terminal would."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from test_api import NOW, seed_rows

from langgraph_pgstore.migrate import head_revision

EXE = Path(sys.executable).with_name("langgraph-pgstore")


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """The console script in a process of its own (wide terminal, no colour unless asked)."""
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FORCE_COLOR")}
    started = time.monotonic()
    done = subprocess.run(
        [str(EXE), *args], input=input, capture_output=True, text=True, timeout=120,
        env={**base, "COLUMNS": "200", **(env or {})},
    )  # fmt: skip
    result = Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
    assert "Traceback" not in result.output, result.output
    return result


def as_json(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- migrate, doctor ----------------------------------------------------------------------


def test_migrate_then_doctor(fresh_db_url: str) -> None:
    before = cli("--url", fresh_db_url, "doctor", "--json")
    assert before.exit_code == 1
    report = json.loads(before.stdout)
    assert report["status"] == "unhealthy" and report["revision"] is None

    migrated = cli("--url", fresh_db_url, "migrate", "--json")
    assert as_json(migrated)["revision"] == head_revision()
    with psycopg.connect(fresh_db_url) as conn:
        assert conn.execute("SELECT to_regclass('runs') IS NOT NULL").fetchone() == (True,)

    after = cli("--url", fresh_db_url, "doctor")
    assert after.exit_code == 0, after.output
    assert "healthy" in after.stdout and "unhealthy" not in after.stdout
    assert head_revision() in after.stdout


def test_doctor_json_figures(db_url: str) -> None:
    report = as_json(cli("--url", db_url, "doctor", "--json"))
    assert report["ok"] is True and report["migrated"] is True
    assert report["tenancy"] == "on" and report["admin"] is True  # the owner: admin path
    assert report["pool"]["pool_max"] >= 1
    assert report["server_version"]


def test_unreachable_server_never_shows_password() -> None:
    port = _closed_port()
    url = f"postgresql://someone:s3cr3t-pw@127.0.0.1:{port}/nowhere"
    doctor = cli("--url", url, "doctor")
    assert doctor.exit_code == 1
    assert "s3cr3t-pw" not in doctor.output
    assert "unhealthy" in doctor.stdout
    runs = cli("--url", url, "runs", "list")
    assert runs.exit_code == 2
    assert "s3cr3t-pw" not in runs.output
    # One clear line, at once (a refused connection is not retried), no pool warnings.
    assert runs.stderr.count("\n") == 1 and runs.stderr.startswith("error: can't connect")
    assert "Connection refused" in runs.stderr and "pool" not in runs.stderr
    assert runs.seconds < 10  # the default connect timeout; the pool's retries took 12 s


def test_silent_server_fails_within_the_connect_timeout() -> None:
    """A server that accepts and never answers: the command gives up after the connect
    timeout (2 s here), with one line."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    accepted.append(server.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            url = f"postgresql://u:pw@127.0.0.1:{server.getsockname()[1]}/db"
            result = cli("--url", url, "sessions", "list", env={"PGSTORE_CONNECT_TIMEOUT": "2"})
        finally:
            stop.set()
            thread.join(5)
            for conn in accepted:
                conn.close()
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "timeout" in result.stderr.lower()
    assert 2 <= result.seconds < 2 + 8  # the timeout, plus the interpreter's start


def test_bad_url_is_a_clear_error() -> None:
    result = cli("--url", "mysql://root:hunter2@localhost/x", "doctor")
    assert result.exit_code == 2
    assert "unsupported URL scheme" in result.stderr
    assert "hunter2" not in result.output


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- runs ---------------------------------------------------------------------------------


@pytest.fixture
def seeded(db_url: str) -> dict[str, Any]:
    return seed_rows(db_url)


def test_runs_list_paginates_and_filters(db_url: str, seeded: dict[str, Any]) -> None:
    first = as_json(cli("--url", db_url, "runs", "list", "--limit", "3", "--json"))
    assert len(first["items"]) == 3 and first["next_cursor"]
    rest = as_json(
        cli("--url", db_url, "runs", "list", "--limit", "3", "--cursor", first["next_cursor"],
            "--json")
    )  # fmt: skip
    ids = [r["id"] for r in first["items"] + rest["items"]]
    assert ids == [str(seeded["runs"][k]) for k in ("b0", "a3", "a2", "a1", "a0")]
    assert rest["next_cursor"] is None
    errors = as_json(cli("--url", db_url, "runs", "list", "--status", "error", "--json"))
    assert [r["id"] for r in errors["items"]] == [str(seeded["runs"]["a2"])]
    bob = as_json(cli("--url", db_url, "runs", "list", "--user", "bob", "--json"))
    assert [r["user_id"] for r in bob["items"]] == ["bob"]
    human = cli("--url", db_url, "runs", "list", "--limit", "2")
    assert human.exit_code == 0
    assert "next page: --cursor" in human.stdout
    assert str(seeded["runs"]["b0"]) in human.stdout


def test_runs_show_timeline_calls_and_stats(db_url: str, seeded: dict[str, Any]) -> None:
    rid = str(seeded["runs"]["a1"])
    details = as_json(cli("--url", db_url, "runs", "show", rid, "--json"))
    assert details["run"]["id"] == rid
    assert [s["node_name"] for s in details["steps"]] == ["agent", "tools", "agent"]
    assert len(details["llm_calls"]) == 2
    assert details["stats"]["total_tokens"] == 370
    human = cli("--url", db_url, "runs", "show", rid)
    assert human.exit_code == 0
    for text in ("steps", "tools", "gpt-4o-mini", "370"):
        assert text in human.stdout
    stats = as_json(cli("--url", db_url, "runs", "stats", rid, "--json"))
    assert stats["cost_usd"] == pytest.approx(0.00103)
    assert "by model" in cli("--url", db_url, "runs", "stats", rid).stdout
    groups = as_json(cli("--url", db_url, "runs", "stats", "--by", "user", "--json"))
    assert {g["key"]: g["runs"] for g in groups} == {"alice": 4, "bob": 1}
    grouped = cli("--url", db_url, "runs", "stats", "--by", "model")
    assert grouped.exit_code == 0 and "gpt-4o-mini" in grouped.stdout
    assert "$0.001000" in grouped.stdout and "$0.000030" in grouped.stdout  # money, not 1e-05
    bad = cli("--url", db_url, "runs", "stats", "--by", "modle")
    assert bad.exit_code == 2 and "modle" in bad.stderr and "model" in bad.stderr
    assert "stats(by" not in bad.stderr  # says the option's choices, not a function's
    helped = cli("runs", "stats", "--help")
    assert "session|user|model|day|graph" in helped.stdout
    by_day = as_json(cli("--url", db_url, "runs", "stats", "--by", "day", "--json"))
    assert {g["key"]: g["runs"] for g in by_day} == {"2025-12-31": 1, "2026-01-10": 4}


def test_runs_show_errors(db_url: str) -> None:
    missing = cli("--url", db_url, "runs", "show", str(uuid.uuid4()))
    assert missing.exit_code == 2 and "no run" in missing.stderr
    unknown = cli("--url", db_url, "runs", "show", "42")
    assert unknown.exit_code == 2 and "no run '42'" in unknown.stderr
    bad_cursor = cli("--url", db_url, "runs", "list", "--cursor", "xx")
    assert bad_cursor.exit_code == 2 and "cursor" in bad_cursor.stderr
    bad_since = cli("--url", db_url, "runs", "list", "--since", "last tuesday")
    assert bad_since.exit_code == 2 and "--since" in bad_since.stderr
    # errors are red (colour forced: not a terminal here)
    red = cli("--url", db_url, "runs", "show", "42", env={"FORCE_COLOR": "1"})
    assert "\x1b[31merror: no run" in red.stderr


def test_ids_by_prefix_or_thread(db_url: str, seeded: dict[str, Any]) -> None:
    """Wherever an id is asked: the id, an unambiguous prefix, or the LangGraph thread id."""
    rid, sid = str(seeded["runs"]["a3"]), str(seeded["sessions"]["alice"])
    for ref in (rid, rid[:8], rid[:4] + "-" + rid[4:8]):
        assert as_json(cli("--url", db_url, "runs", "show", ref, "--json"))["run"]["id"] == rid
    newest = as_json(cli("--url", db_url, "runs", "show", "t-alice", "--json"))  # the newest
    assert newest["run"]["id"] == rid
    for ref in (sid, sid[:6], "t-alice"):
        shown = as_json(cli("--url", db_url, "sessions", "show", ref, "--json"))
        assert shown["session"]["id"] == sid
    with psycopg.connect(db_url, autocommit=True) as conn:
        for n in (1, 2):
            conn.execute("INSERT INTO runs (id, status) VALUES (%s, 'success')",
                         (f"abcd0000-0000-0000-0000-00000000000{n}",))  # fmt: skip
    twice = cli("--url", db_url, "runs", "show", "abcd")
    assert twice.exit_code == 2 and "ambiguous" in twice.stderr
    one = cli("--url", db_url, "runs", "stats", "abcd0000-0000-0000-0000-0000000000", "--json")
    assert one.exit_code == 2 and "ambiguous" in one.stderr
    exact = as_json(cli("--url", db_url, "runs", "stats", "abcd0000000000000000000000000002",
                        "--json"))  # fmt: skip
    assert exact["run_id"] == "abcd0000-0000-0000-0000-000000000002"


def test_human_output_formats(db_url: str, seeded: dict[str, Any]) -> None:
    """Money as dollars, durations in ms with fixed decimals, times in ISO 8601 with their
    zone, an error status highlighted."""
    listed = cli("--url", db_url, "runs", "list", env={"FORCE_COLOR": "1"})
    assert listed.exit_code == 0
    assert "2026-01-10T11:58:00Z" in listed.stdout  # a2 started two minutes before NOW
    assert "2,000.0" in listed.stdout  # every seeded run took 2 s
    assert re.search(r"\x1b\[1;31merror *\x1b\[0m", listed.stdout)  # failed run: in red
    shown = cli("--url", db_url, "runs", "show", str(seeded["runs"]["a1"]))
    assert "$0.001030" in shown.stdout and "$0.000030" in shown.stdout
    assert "5.85e" not in shown.stdout and "e-0" not in shown.stdout
    assert "100.0" in shown.stdout and "200.0" in shown.stdout  # latencies, one decimal


def test_since_and_until(db_url: str, seeded: dict[str, Any]) -> None:
    since = (NOW - timedelta(minutes=2, seconds=30)).isoformat()
    recent = as_json(cli("--url", db_url, "runs", "list", "--since", since, "--json"))
    assert [r["id"] for r in recent["items"]] == [
        str(seeded["runs"][k]) for k in ("b0", "a3", "a2")
    ]
    old = as_json(cli("--url", db_url, "runs", "list", "--until", "2026-01-01", "--json"))
    assert [r["id"] for r in old["items"]] == [str(seeded["runs"]["a0"])]
    none = as_json(cli("--url", db_url, "runs", "list", "--since", "1h", "--json"))
    assert none["items"] == []  # the seeds are dated January 2026
    groups = as_json(cli("--url", db_url, "runs", "stats", "--by", "user", "--until",
                         "2026-01-01", "--json"))  # fmt: skip
    assert {g["key"]: g["runs"] for g in groups} == {"alice": 1}


def test_unmigrated_database_says_migrate(fresh_db_url: str) -> None:
    result = cli("--url", fresh_db_url, "runs", "list")
    assert result.exit_code == 2
    assert "migrate" in result.stderr


# -- sessions -----------------------------------------------------------------------------


def test_sessions_list_and_show(db_url: str, seeded: dict[str, Any]) -> None:
    listed = as_json(cli("--url", db_url, "sessions", "list", "--json"))
    assert {s["id"] for s in listed["items"]} == {str(s) for s in seeded["sessions"].values()}
    alice = as_json(cli("--url", db_url, "sessions", "list", "--user", "alice", "--json"))
    assert [s["thread_id"] for s in alice["items"]] == ["t-alice"]
    sid = str(seeded["sessions"]["alice"])
    shown = as_json(cli("--url", db_url, "sessions", "show", sid, "--limit", "3", "--json"))
    assert [m["position"] for m in shown["messages"]["items"]] == [0, 1, 2]
    assert shown["messages"]["next_cursor"]
    assert shown["session"]["message_count"] == 5  # the removed one is not counted
    human = cli("--url", db_url, "sessions", "show", sid)
    assert human.exit_code == 0
    assert "alice message 4" in human.stdout and "assistant" in human.stdout
    assert "alice removed" not in human.stdout
    last = as_json(cli("--url", db_url, "sessions", "show", sid, "--last", "--limit", "2",
                       "--json"))  # fmt: skip
    assert [m["content"] for m in last["messages"]["items"]] == [
        "alice message 3", "alice message 4"
    ]  # fmt: skip
    assert cli("--url", db_url, "sessions", "show", str(uuid.uuid4())).exit_code == 2
    bad = cli("--url", db_url, "sessions", "list", "--status", "deleted")
    assert bad.exit_code == 2 and "active" in bad.stderr


# -- purge-user, sweep --------------------------------------------------------------------


def _count(url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row
        return int(row[0])


def test_purge_user(db_url: str, seeded: dict[str, Any]) -> None:
    declined = cli("--url", db_url, "purge-user", "alice", input="n\n")
    assert declined.exit_code == 1
    assert "6 messages" in declined.stderr and "4 runs" in declined.stderr  # what would go
    assert _count(db_url, "SELECT count(*) FROM runs WHERE user_id = 'alice'") == 4
    assert _count(db_url, "SELECT count(*) FROM messages") == 7  # rolled back
    nobody = cli("--url", db_url, "purge-user", "nobody", input="y\n")
    assert nobody.exit_code == 2 and "no user 'nobody'" in nobody.stderr
    assert "Delete" not in nobody.output  # said before any question

    counts = as_json(cli("--url", db_url, "purge-user", "alice", "--yes", "--json"))
    subset = {k: counts[k] for k in ("users", "sessions", "messages", "runs")}
    assert subset == {"users": 1, "sessions": 1, "messages": 6, "runs": 4}
    assert _count(db_url, "SELECT count(*) FROM runs WHERE user_id = 'alice'") == 0
    assert _count(db_url, "SELECT count(*) FROM users WHERE external_id = 'alice'") == 0
    assert _count(db_url, "SELECT count(*) FROM messages") == 1  # bob's survives
    assert _count(db_url, "SELECT count(*) FROM steps") == 0  # cascaded with alice's run
    assert _count(db_url, "SELECT count(*) FROM runs") == 1

    again = cli("--url", db_url, "purge-user", "alice", "--yes")
    assert again.exit_code == 2 and "no user" in again.stderr


def test_sweep_runs_retention(db_url: str, seeded: dict[str, Any]) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        # A run still being recorded is never swept, however old.
        conn.execute(
            "INSERT INTO runs (id, status, started_at) "
            "VALUES (%s, 'running', now() - '1 year'::interval)",
            (uuid.uuid4(),),
        )
    total = _count(db_url, "SELECT count(*) FROM runs")
    result = as_json(cli("--url", db_url, "sweep", "--runs-older-than", "1", "--json"))
    # The seeds are dated 2026-01; the run still marked running stays.
    old = total - 1
    assert result["runs"] == old
    assert _count(db_url, "SELECT count(*) FROM runs") == 1
    assert "memory_items" in result
    bad = cli("--url", db_url, "sweep", "--runs-older-than", "0")
    assert bad.exit_code == 2 and "positive" in bad.stderr
    assert _count(db_url, "SELECT count(*) FROM runs") == 1


# -- embedded -----------------------------------------------------------------------------


def test_embedded_status_of_an_empty_directory(tmp_path: Path) -> None:
    status = as_json(cli("embedded", "status", "--data-dir", str(tmp_path / "pg"), "--json"))
    assert status["running"] is False and status["initialized"] is False
    human = cli("embedded", "status", "--data-dir", str(tmp_path / "pg"))
    assert "not running" in human.stdout
    stop = as_json(cli("embedded", "stop", "--data-dir", str(tmp_path / "pg"), "--json"))
    assert stop == {"stopped": False}


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the embedded server needs 3.12+")
def test_embedded_start_status_stop(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "pg")
    started = cli("embedded", "start", "--data-dir", data_dir, "--json")
    try:
        info = as_json(started)
        assert info["running"] is True and info["url"].startswith("postgres")
        status = as_json(cli("embedded", "status", "--data-dir", data_dir, "--json"))
        assert status["running"] is True and status["pid"]
        # The server outlives the command that started it: connect to it directly.
        params = conninfo_to_dict(status["url"])
        with psycopg.connect(make_conninfo(**params)) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        stopped = cli("embedded", "stop", "--data-dir", data_dir)
    assert stopped.exit_code == 0 and "stopped" in stopped.stdout
    status = as_json(cli("embedded", "status", "--data-dir", data_dir, "--json"))
    assert status["running"] is False and status["initialized"] is True


def _console(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("langgraph-pgstore")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, timeout=120)


CLIENT = "import langgraph_pgstore as l\nwith l.connect(migrate=False) as db: db.health()"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the embedded server needs 3.12+")
def test_embedded_start_outlives_every_client(tmp_path: Path) -> None:
    """A server from ``embedded start`` survives clients that attach and exit; ``stop`` ends
    it. Without ``start``, the last client to exit stops the server it started."""
    data_dir = str(tmp_path / "pg")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGSTORE_DATABASE_URL")}
    env["PGSTORE_DATA_DIR"] = data_dir
    try:
        assert _console("embedded", "start", "--data-dir", data_dir).returncode == 0
        for _ in range(2):  # two clients in turn, each the last one attached when it exits
            client = subprocess.run([sys.executable, "-c", CLIENT], env=env, timeout=120)
            assert client.returncode == 0
            status = json.loads(_console("embedded", "status", "--json", env=env).stdout)
            assert status["running"] is True and status["keep_running"] is True
    finally:
        assert "stopped" in _console("embedded", "stop", "--data-dir", data_dir).stdout
    status = json.loads(_console("embedded", "status", "--json", env=env).stdout)
    assert status["running"] is False and status["keep_running"] is False

    client = subprocess.run([sys.executable, "-c", CLIENT], env=env, timeout=120)
    assert client.returncode == 0
    status = json.loads(_console("embedded", "status", "--json", env=env).stdout)
    assert status["running"] is False  # its only client started it and stopped it


# -- the installed entry point ------------------------------------------------------------


def test_console_script_reads_database_url(db_url: str) -> None:
    """No ``--url``: ``DATABASE_URL`` decides; doctor's JSON is ``GET /health``'s."""
    ok = cli("doctor", "--json", env={"DATABASE_URL": db_url})
    assert ok.exit_code == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] is True and report["status"] == "healthy"
    assert datetime.fromisoformat(report["checked_at"]).tzinfo is not None
    installed = {k: v["installed"] for k, v in report["extensions"].items()}
    human = cli("doctor", env={"DATABASE_URL": db_url})
    for name, version in installed.items():  # the table says what the JSON says
        line = next(ln for ln in human.stdout.splitlines() if f"extension {name}" in ln)
        assert (f"{version} installed" in line) if version else ("not installed" in line)
    bad = cli("runs", "show", "nope", env={"DATABASE_URL": db_url})
    assert bad.exit_code == 2 and "no run 'nope'" in bad.stderr


def test_serve_answers_http(db_url: str, tmp_path: Path) -> None:
    """``serve`` in its own process: liveness, health and runs over HTTP, then stopped."""
    import time

    import httpx

    port = _closed_port()
    exe = Path(sys.executable).with_name("langgraph-pgstore")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "langgraph_pgstore.cli"]
    log = tmp_path / "serve.log"
    with (
        log.open("wb") as sink,
        subprocess.Popen(
            [*cmd, "--url", db_url, "serve", "--port", str(port)], stdout=sink, stderr=sink
        ) as proc,
    ):
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    live = httpx.get(f"{base}/health/liveness", timeout=2)
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, log.read_text()
                    assert time.monotonic() < deadline, "serve did not come up"
                    time.sleep(0.2)
            assert live.json() == {"status": "alive"}
            assert httpx.get(f"{base}/health", timeout=10).json()["status"] == "healthy"
            runs = httpx.get(f"{base}/runs", timeout=10).json()
            assert runs == {"items": [], "next_cursor": None}
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_stored_text_prints_literally(db_url: str) -> None:
    """Rich markup in stored data (a thread id ``[/bold] x``) is printed, never interpreted."""
    nasty = "[/bold] x [red]y"
    with psycopg.connect(db_url, autocommit=True) as conn:
        sid = conn.execute(
            "INSERT INTO sessions (thread_id, title) VALUES (%s, %s) RETURNING id", (nasty, nasty)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO messages (session_id, position, role, content) VALUES (%s, 0, %s, %s)",
            (sid, "[/i]user", nasty),
        )
        rid = uuid.uuid4()
        conn.execute(
            "INSERT INTO runs (id, graph_name, thread_id, user_id, status, error_type, "
            "error_message) VALUES (%s, %s, %s, %s, 'error', %s, %s)",
            (rid, nasty, nasty, nasty, "[/b]Boom", nasty),
        )
    env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200"}
    exe = Path(sys.executable).with_name("langgraph-pgstore")
    for args in (["sessions", "list"], ["sessions", "show", str(sid)], ["runs", "list"],
                 ["runs", "show", str(rid)]):  # fmt: skip
        done = subprocess.run([str(exe), *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert "[/bold] x [red]y" in done.stdout, args


def test_runs_show_tree_prints_stored_text_literally(db_url: str) -> None:
    """``runs show ID --tree`` in the real process: spans nested in order, with figures."""
    from test_ui import NASTY, record_runs

    runs = record_runs(db_url)
    exe = Path(sys.executable).with_name("langgraph-pgstore")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "langgraph_pgstore.cli"]
    env = {**os.environ, "COLUMNS": "200"}
    shown = subprocess.run(
        [*cmd, "--url", db_url, "runs", "show", str(runs["bob"]), "--tree"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "support run" in line)
    tree = lines[start:]
    expected = ["support run", "agent node", "gpt-4o-mini llm (openai)", "explode node"]
    found = [next(i for i, line in enumerate(tree) if e in line) for e in expected]
    assert found == sorted(found)
    assert tree[found[1]].startswith("├── ") and tree[found[2]].startswith("│   └── ")
    assert "100 in / 20 out  $0.000027" in tree[found[2]]
    assert "error" in tree[found[3]] and "100 in / 20 out" not in tree[found[3]]
    assert shown.stdout.count(f"ValueError: {NASTY}") == 2  # the run's error and the node's
