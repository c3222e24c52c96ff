"""The ``langgraph-pgstore`` command against the real database (typer's runner, in process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from test_api import seed_rows
from typer.testing import CliRunner

from langgraph_pgstore.cli import app
from langgraph_pgstore.migrate import head_revision

runner = CliRunner()


def cli(*args: str, input: str | None = None) -> Any:
    result = runner.invoke(app, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
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


def test_unreachable_server_never_shows_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSTORE_CONNECT_TIMEOUT", "1")
    port = _closed_port()
    url = f"postgresql://someone:s3cr3t-pw@127.0.0.1:{port}/nowhere"
    doctor = cli("--url", url, "doctor")
    assert doctor.exit_code == 1
    assert "s3cr3t-pw" not in doctor.output
    assert "unhealthy" in doctor.stdout
    runs = cli("--url", url, "runs", "list")
    assert runs.exit_code == 2
    assert "s3cr3t-pw" not in runs.output
    assert "Traceback" not in runs.output
    assert "error:" in runs.stderr


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
    bad = cli("--url", db_url, "runs", "stats", "--by", "planet")
    assert bad.exit_code == 2 and "planet" in bad.stderr


def test_runs_show_errors(db_url: str) -> None:
    missing = cli("--url", db_url, "runs", "show", str(uuid.uuid4()))
    assert missing.exit_code == 2 and "no run" in missing.stderr
    malformed = cli("--url", db_url, "runs", "show", "42")
    assert malformed.exit_code == 2 and "must be a UUID" in malformed.stderr
    bad_cursor = cli("--url", db_url, "runs", "list", "--cursor", "xx")
    assert bad_cursor.exit_code == 2 and "cursor" in bad_cursor.stderr
    assert "Traceback" not in missing.output + malformed.output + bad_cursor.output


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
    human = cli("--url", db_url, "sessions", "show", sid)
    assert human.exit_code == 0
    assert "alice message 4" in human.stdout and "assistant" in human.stdout
    assert cli("--url", db_url, "sessions", "show", str(uuid.uuid4())).exit_code == 2


# -- purge-user, sweep --------------------------------------------------------------------


def _count(url: str, sql: str, *params: Any) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
        assert row
        return int(row[0])


def test_purge_user(db_url: str, seeded: dict[str, Any]) -> None:
    declined = cli("--url", db_url, "purge-user", "alice", input="n\n")
    assert declined.exit_code == 1
    assert _count(db_url, "SELECT count(*) FROM runs WHERE user_id = 'alice'") == 4

    counts = as_json(cli("--url", db_url, "purge-user", "alice", "--yes", "--json"))
    subset = {k: counts[k] for k in ("users", "sessions", "messages", "runs")}
    assert subset == {"users": 1, "sessions": 1, "messages": 5, "runs": 4}
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


def test_console_script_runs(db_url: str) -> None:
    """The real process: exit codes and output survive outside the test runner."""
    env = {**os.environ, "DATABASE_URL": db_url}
    exe = Path(sys.executable).with_name("langgraph-pgstore")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "langgraph_pgstore.cli"]
    ok = subprocess.run([*cmd, "doctor", "--json"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    bad = subprocess.run([*cmd, "runs", "show", "nope"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr and "must be a UUID" in bad.stderr


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
