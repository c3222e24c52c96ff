"""The HTTP API over real HTTP (uvicorn on 127.0.0.1) against the real database."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI, Header, HTTPException
from pgtest import migrated_database
from psycopg.types.json import Jsonb

from langgraph_pgstore import AsyncDatabase
from langgraph_pgstore.api import create_app, create_router

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def seed_rows(url: str) -> dict[str, Any]:
    """Two users (alice, bob), their sessions and messages, runs with steps and LLM calls."""
    ids: dict[str, Any] = {"runs": {}, "sessions": {}}
    with psycopg.connect(url, autocommit=True) as conn:
        users = {}
        for name in ("alice", "bob"):
            row = conn.execute(
                "INSERT INTO users (external_id, name) VALUES (%s, %s) RETURNING id", (name, name)
            ).fetchone()
            assert row
            users[name] = row[0]
        ids["users"] = users
        for name, n_msgs in (("alice", 5), ("bob", 1)):
            sid = uuid.uuid4()
            conn.execute(
                "INSERT INTO sessions (id, thread_id, user_id, owner_id, title, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (sid, f"t-{name}", users[name], name, f"{name}'s chat", NOW),
            )
            # Inserted newest first, so row ids run against positions (order is by position).
            for i in reversed(range(n_msgs)):
                conn.execute(
                    "INSERT INTO messages (session_id, message_id, position, role, content, "
                    "owner_id) VALUES (%s, %s, %s, %s, %s, %s)",
                    (sid, f"{name}-{i}", i, "user" if i % 2 == 0 else "assistant",
                     f"{name} message {i}", name),
                )  # fmt: skip
            ids["sessions"][name] = sid
        # A message that left alice's thread state (RemoveMessage): hidden, not counted.
        conn.execute(
            "INSERT INTO messages (session_id, message_id, position, role, content, owner_id, "
            "checkpoint_id, removed_at) VALUES (%s, 'gone', 2, 'assistant', 'alice removed', "
            "'alice', 'cp-1', %s)",
            (ids["sessions"]["alice"], NOW),
        )
        # alice: 4 runs (one failed, one 10 days old), bob: 1 run.
        specs = [
            ("a0", "alice", "success", NOW - timedelta(days=10)),
            ("a1", "alice", "success", NOW - timedelta(minutes=3)),
            ("a2", "alice", "error", NOW - timedelta(minutes=2)),
            ("a3", "alice", "success", NOW - timedelta(minutes=1)),
            ("b0", "bob", "success", NOW),
        ]
        for key, user, status, started in specs:
            rid = uuid.uuid4()
            conn.execute(
                "INSERT INTO runs (id, graph_name, thread_id, user_id, owner_id, status, "
                "error_type, error_message, metadata, started_at, completed_at) "
                "VALUES (%s, 'chat', %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    rid, f"t-{user}", user, user, status,
                    "ValueError" if status == "error" else None,
                    "boom" if status == "error" else None,
                    Jsonb({"k": key}), started, started + timedelta(seconds=2),
                ),
            )  # fmt: skip
            ids["runs"][key] = rid
        run = ids["runs"]["a1"]
        conn.execute(
            "UPDATE runs SET idempotency_key = 'order-17', trace_id = 'trace-a1' WHERE id = %s",
            (run,),
        )
        step_ids = []
        for n, node in enumerate(("agent", "tools", "agent")):
            sid = uuid.uuid4()
            step_ids.append(sid)
            started = NOW - timedelta(minutes=3) + timedelta(milliseconds=100 * n)
            conn.execute(
                "INSERT INTO steps (id, run_id, node_name, step_number, status, started_at, "
                "completed_at, owner_id) VALUES (%s, %s, %s, %s, 'success', %s, %s, 'alice')",
                (sid, run, node, n + 1, started, started + timedelta(milliseconds=50)),
            )
        for n, (model, tin, tout, cost) in enumerate(
            (("gpt-4o-mini", 100, 20, "0.00003"), ("gpt-4o", 200, 50, "0.00100"))
        ):
            conn.execute(
                "INSERT INTO llm_calls (id, run_id, step_id, provider_name, request_model, "
                "input_tokens, output_tokens, total_tokens, cost_usd, latency_ms, status, "
                "started_at, owner_id) "
                "VALUES (%s, %s, %s, 'openai', %s, %s, %s, %s, %s, %s, 'success', %s, 'alice')",
                (
                    uuid.uuid4(), run, step_ids[2 * n], model, tin, tout, tin + tout, cost,
                    100.0 * (n + 1), NOW - timedelta(minutes=3) + timedelta(milliseconds=10 + n),
                ),
            )  # fmt: skip
    return ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """uvicorn serving ``app`` in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def api_db_url(server_url: str, template_url: str) -> Iterator[str]:
    """One seeded database for the module's read-only tests."""
    with migrated_database(server_url, "t_api") as url:
        yield url


@pytest.fixture(scope="module")
def seeded(api_db_url: str) -> dict[str, Any]:
    return seed_rows(api_db_url)


@pytest.fixture(scope="module")
def client(api_db_url: str, seeded: dict[str, Any]) -> Iterator[httpx.Client]:
    with LiveServer(create_app(api_db_url)) as http:
        yield http


async def header_user(x_user: str | None = Header(default=None)) -> str:
    """The host's authentication, reduced to a header for the test."""
    if not x_user:
        raise HTTPException(401, "who are you?")
    return x_user


def host_app(
    url: str, auth: Callable[..., Any] | None = header_user, *, ui: bool = False
) -> FastAPI:
    """A host application that opens the database itself and mounts our router."""
    from contextlib import asynccontextmanager

    holder: dict[str, AsyncDatabase] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        async with AsyncDatabase.connect(url, migrate=False) as db:
            holder["db"] = db
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(create_router(lambda: holder["db"], auth=auth, ui=ui), prefix="/pgstore")
    app.state.holder = holder
    return app


@pytest.fixture(scope="module")
def host(api_db_url: str, seeded: dict[str, Any]) -> Iterator[httpx.Client]:
    with LiveServer(host_app(api_db_url)) as http:
        yield http


# -- health -------------------------------------------------------------------------------


def test_liveness(client: httpx.Client) -> None:
    r = client.get("/health/liveness")
    assert r.status_code == 200
    assert r.json() == {"status": "alive"}


def test_readiness_reports_pool_figures(client: httpx.Client) -> None:
    r = client.get("/health/readiness")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["pool"]["pool_max"] >= 1
    assert body["pool"]["pool_size"] >= 1


def test_health_on_migrated_database(client: httpx.Client) -> None:
    before = datetime.now(UTC)
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "healthy"
    assert body["migrated"] is True
    assert body["revision"] == body["head"]
    assert "pool" in body and body["pool"]["pool_max"] >= 1
    assert "password" not in r.text
    checked = datetime.fromisoformat(body["checked_at"])
    assert checked.tzinfo is not None and before <= checked <= datetime.now(UTC)


def test_health_503_when_schema_missing(fresh_db_url: str) -> None:
    with LiveServer(create_app(fresh_db_url)) as http:
        r = http.get("/health")
        assert r.status_code == 503
        body = r.json()
        assert body["status"] == "unhealthy"
        assert body["revision"] is None
        assert any("migrate" in p for p in body["problems"])
        # Liveness does not touch the database; readiness only needs a connection.
        assert http.get("/health/liveness").status_code == 200
        assert http.get("/health/readiness").status_code == 200
        # Reads say what the operator must do.
        runs = http.get("/runs")
        assert runs.status_code == 503 and "migrate" in runs.json()["detail"]


def test_readiness_503_when_pool_is_gone(db_url: str) -> None:
    app = host_app(db_url, auth=None)
    with LiveServer(app) as http:
        assert http.get("/pgstore/health/readiness").status_code == 200
        db = app.state.holder["db"]
        # Close the pool from the server's own loop, as a crashed database would leave it.
        import asyncio

        server_loop = _loop_of(db)
        asyncio.run_coroutine_threadsafe(db.pool.close(), server_loop).result(10)
        r = http.get("/pgstore/health/readiness")
        assert r.status_code == 503
        assert r.json()["status"] == "not_ready"
        assert http.get("/pgstore/health/liveness").status_code == 200
        # Reads answer 503 too, without leaking the driver's message.
        runs = http.get("/pgstore/runs")
        assert runs.status_code == 503 and runs.json() == {"detail": "database unavailable"}


def _loop_of(db: AsyncDatabase) -> Any:
    loop = db.pool._sched_runner.get_loop()  # type: ignore[union-attr]
    return loop


# -- runs ---------------------------------------------------------------------------------


def test_runs_newest_first_with_cursor_pagination(
    client: httpx.Client, seeded: dict[str, Any]
) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/runs", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    order = ["b0", "a3", "a2", "a1", "a0"]
    assert seen == [str(seeded["runs"][k]) for k in order]
    assert pages == 3


def test_runs_filters(client: httpx.Client, seeded: dict[str, Any]) -> None:
    errors = client.get("/runs", params={"status": "error"}).json()["items"]
    assert [r["id"] for r in errors] == [str(seeded["runs"]["a2"])]
    assert errors[0]["error_message"] == "boom"
    bob = client.get("/runs", params={"thread_id": "t-bob"}).json()["items"]
    assert [r["id"] for r in bob] == [str(seeded["runs"]["b0"])]
    assert client.get("/runs", params={"graph_name": "nope"}).json()["items"] == []


def test_run_detail_steps_calls_stats(client: httpx.Client, seeded: dict[str, Any]) -> None:
    rid = str(seeded["runs"]["a1"])
    detail = client.get(f"/runs/{rid}").json()
    assert len(detail["steps"]) == 3 and len(detail["llm_calls"]) == 2
    run = detail["run"]
    assert run["id"] == rid and run["status"] == "success"
    assert run["error_message"] is None and run["metadata"] == {"k": "a1"}
    steps = client.get(f"/runs/{rid}/steps").json()
    assert [s["node_name"] for s in steps] == ["agent", "tools", "agent"]
    assert [s["step_number"] for s in steps] == [1, 2, 3]
    calls = client.get(f"/runs/{rid}/llm_calls").json()
    assert [c["request_model"] for c in calls] == ["gpt-4o-mini", "gpt-4o"]
    stats = client.get(f"/runs/{rid}/stats").json()
    assert stats["step_count"] == 3
    assert stats["llm_calls"] == 2
    assert stats["input_tokens"] == 300 and stats["output_tokens"] == 70
    assert stats["total_tokens"] == 370
    assert stats["cost_usd"] == pytest.approx(0.00103)  # a JSON number, not a string
    models = client.get("/stats", params={"by": "model", "run_id": rid}).json()
    assert {m["key"]: m["llm_calls"] for m in models} == {"gpt-4o": 1, "gpt-4o-mini": 1}
    # A run without steps or calls has zero calls and no models.
    empty = client.get(f"/runs/{seeded['runs']['b0']}/stats").json()
    assert empty["llm_calls"] == 0
    assert client.get("/stats", params={"by": "model", "run_id": empty["run_id"]}).json() == []


@pytest.mark.parametrize(
    "path", ["/runs/{id}", "/runs/{id}/steps", "/runs/{id}/llm_calls", "/runs/{id}/stats"]
)
def test_unknown_run_is_404_malformed_is_422(client: httpx.Client, path: str) -> None:
    assert client.get(path.format(id=uuid.uuid4())).status_code == 404
    assert client.get(path.format(id="not-a-uuid")).status_code == 422


def test_bad_pagination_is_422(client: httpx.Client) -> None:
    assert client.get("/runs", params={"limit": 0}).status_code == 422
    assert client.get("/runs", params={"limit": 100000}).status_code == 422
    r = client.get("/runs", params={"cursor": "garbage!!"})
    assert r.status_code == 422
    assert "cursor" in r.json()["detail"]
    assert client.get("/sessions/x/messages").status_code == 422


# -- sessions -----------------------------------------------------------------------------


def test_sessions_and_messages(client: httpx.Client, seeded: dict[str, Any]) -> None:
    items = client.get("/sessions").json()["items"]
    assert {s["id"] for s in items} == {str(s) for s in seeded["sessions"].values()}
    sid = str(seeded["sessions"]["alice"])
    session = client.get(f"/sessions/{sid}").json()
    assert session["thread_id"] == "t-alice"
    assert session["owner_id"] == "alice"
    assert session["message_count"] == 5  # the removed one is not counted
    contents: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/sessions/{sid}/messages", params=params).json()
        contents += [m["content"] for m in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert contents == [f"alice message {i}" for i in range(5)]  # by position, removed hidden
    everything = client.get(f"/sessions/{sid}/messages", params={"include_removed": True})
    assert "alice removed" in [m["content"] for m in everything.json()["items"]]
    newest = client.get(f"/sessions/{sid}/messages", params={"last": True, "limit": 2}).json()
    assert [m["content"] for m in newest["items"]] == ["alice message 3", "alice message 4"]
    assert client.get(f"/sessions/{uuid.uuid4()}").status_code == 404
    assert client.get(f"/sessions/{uuid.uuid4()}/messages").status_code == 404
    assert client.get("/sessions/nope").status_code == 422


# -- auth ---------------------------------------------------------------------------------


def test_auth_scopes_everything_to_the_caller(host: httpx.Client, seeded: dict[str, Any]) -> None:
    assert host.get("/pgstore/runs").status_code == 401
    alice = {"X-User": "alice"}
    runs = host.get("/pgstore/runs", headers=alice).json()["items"]
    assert {r["user_id"] for r in runs} == {"alice"} and len(runs) == 4
    bob_run = seeded["runs"]["b0"]
    for suffix in ("", "/steps", "/llm_calls", "/stats"):
        assert host.get(f"/pgstore/runs/{bob_run}{suffix}", headers=alice).status_code == 404
    assert host.get(f"/pgstore/runs/{bob_run}", headers={"X-User": "bob"}).status_code == 200
    sessions = host.get("/pgstore/sessions", headers=alice).json()["items"]
    assert [s["id"] for s in sessions] == [str(seeded["sessions"]["alice"])]
    bob_session = seeded["sessions"]["bob"]
    assert host.get(f"/pgstore/sessions/{bob_session}", headers=alice).status_code == 404
    r = host.get(f"/pgstore/sessions/{bob_session}/messages", headers=alice)
    assert r.status_code == 404
    # Users are their external ids: bob's internal UUID names nobody.
    by_uuid = {"X-User": str(seeded["users"]["bob"])}
    assert host.get(f"/pgstore/sessions/{bob_session}", headers=by_uuid).status_code == 404
    assert host.get("/pgstore/sessions", headers=by_uuid).json()["items"] == []
    # Health is never scoped (probes carry no credentials).
    assert host.get("/pgstore/health/liveness").status_code == 200


# -- OpenAPI ------------------------------------------------------------------------------


def test_openapi_schema_is_valid(client: httpx.Client) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == set(ROUTES)
    run_param = spec["paths"]["/runs/{run_id}"]["get"]["parameters"][0]
    assert run_param["schema"]["format"] == "uuid"
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(spec)


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _typed(spec: dict[str, Any], schema: dict[str, Any]) -> bool:
    """A body names its fields: an object with properties (a page's items too), a list of
    such, or a choice of such and null."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        parts = [p for p in schema["anyOf"] if p.get("type") != "null"]
        return bool(parts) and all(_typed(spec, p) for p in parts)
    if schema.get("type") == "array":
        items = schema["items"]
        return _resolve(spec, items).get("type") == "string" or _typed(spec, items)
    props = schema.get("properties")
    if not props:
        return False
    if "items" in props and "next_cursor" in props:  # a page: its items are typed too
        return _typed(spec, props["items"])
    return True


def test_openapi_every_response_has_typed_properties(client: httpx.Client) -> None:
    """No ``object, additionalProperties: true`` bodies: each response names its fields, and
    counts are integers while money is a number."""
    spec = client.get("/openapi.json").json()
    checked = 0
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            for code, response in op["responses"].items():
                if code == "204":
                    continue
                content = response.get("content", {}).get("application/json")
                assert content, (method, path, code)
                assert _typed(spec, content["schema"]), (method, path, code)
                checked += 1
    assert checked >= len(ROUTES)
    schemas = spec["components"]["schemas"]
    assert schemas["RunStats"]["properties"]["step_count"]["type"] == "integer"
    assert schemas["GroupStats"]["properties"]["steps"]["type"] == "integer"
    money = schemas["RunStats"]["properties"]["cost_usd"]["anyOf"]
    assert {"type": "number"} in money and {"type": "string"} not in money


def test_grouped_stats(client: httpx.Client, host: httpx.Client) -> None:
    by_user = {g["key"]: g for g in client.get("/stats", params={"by": "user"}).json()}
    assert by_user["alice"]["runs"] == 4 and by_user["alice"]["errors"] == 1
    assert by_user["bob"]["runs"] == 1
    by_model = {g["key"]: g for g in client.get("/stats", params={"by": "model"}).json()}
    assert by_model["gpt-4o"]["input_tokens"] == 200
    by_session = client.get("/stats", params={"by": "session"}).json()
    assert all(isinstance(g["steps"], int) and isinstance(g["runs"], int) for g in by_session)
    assert by_model["gpt-4o-mini"]["cost_usd"] == pytest.approx(0.00003)
    assert client.get("/stats", params={"by": "nonsense"}).status_code == 422
    # Scoped: alice's totals only.
    scoped = host.get("/pgstore/stats", params={"by": "user"}, headers={"X-User": "alice"})
    assert [g["key"] for g in scoped.json()] == ["alice"]


def test_a_real_recorded_run_end_to_end(db_url: str) -> None:
    """A graph run through the checkpointer and telemetry, read back over HTTP."""
    from langgraph.graph import START, MessagesState, StateGraph
    from test_telemetry_fakes import UsageChatModel

    from langgraph_pgstore import Database

    llm = UsageChatModel()

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    def after(state: MessagesState) -> dict[str, Any]:
        return {}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("after", after)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "after")
    run_id = uuid.uuid4()
    with Database.connect(db_url) as db:
        graph = db.telemetry.instrument(builder.compile(checkpointer=db.checkpointer, name="e2e"))
        config = {
            "run_id": run_id,
            "metadata": {"user_id": "carol"},
            "configurable": {"thread_id": "t-carol"},
        }
        graph.invoke({"messages": [("user", "hi")]}, config)
        assert db.telemetry.flush(10)

    with LiveServer(create_app(db_url)) as http:
        runs = http.get("/runs", params={"thread_id": "t-carol"}).json()["items"]
        assert [r["id"] for r in runs] == [str(run_id)]
        assert runs[0]["graph_name"] == "e2e" and runs[0]["status"] == "success"
        steps = http.get(f"/runs/{run_id}/steps").json()
        assert [s["node_name"] for s in steps if s["kind"] == "node"] == ["agent", "after"]
        calls = http.get(f"/runs/{run_id}/llm_calls").json()
        assert [(c["request_model"], c["input_tokens"]) for c in calls] == [("gpt-4o-mini", 100)]
        assert http.get("/runs/find", params={"trace_id": str(run_id)}).json()["id"] == str(run_id)
        stats = http.get(f"/runs/{run_id}/stats").json()
        assert stats["llm_calls"] == 1 and stats["cost_usd"] == pytest.approx(0.000027)
        sessions = http.get("/sessions").json()["items"]
        [session] = [s for s in sessions if s["thread_id"] == "t-carol"]
        messages = http.get(f"/sessions/{session['id']}/messages").json()["items"]
        assert [(m["role"], m["content"]) for m in messages] == [
            ("user", "hi"),
            ("assistant", "hello there"),
        ]


# -- every route against the library call it mirrors ----------------------------------------

#: Every path the router serves (the OpenAPI test checks the list is complete).
ROUTES = (
    "/health", "/health/liveness", "/health/readiness", "/runs", "/runs/find", "/runs/{run_id}",
    "/runs/{run_id}/steps", "/runs/{run_id}/llm_calls", "/runs/{run_id}/stats", "/stats",
    "/sessions", "/sessions/{session_id}", "/sessions/{session_id}/messages",
    "/sessions/{session_id}/stats", "/sessions/{session_id}/analysis", "/store/items",
    "/store/items/search", "/store/namespaces",
)  # fmt: skip


def test_every_route_answers_what_the_library_returns(
    client: httpx.Client, api_db_url: str, seeded: dict[str, Any]
) -> None:
    """Each data route's JSON equals the library call it mirrors, serialised as the same
    type, on the same data (removed messages included); health has the report's fields."""
    from pydantic import TypeAdapter

    from langgraph_pgstore import Database
    from langgraph_pgstore.conversations.models import (
        Message,
        Session,
        SessionStats,
        StoredChainAnalysis,
    )
    from langgraph_pgstore.paging import Page
    from langgraph_pgstore.telemetry import records as rec

    def same(path: str, params: dict[str, Any], kind: Any, value: Any) -> None:
        r = client.get(path, params=params)
        assert r.status_code == 200, (path, r.text)
        assert r.json() == TypeAdapter(kind).dump_python(value, mode="json"), path
        covered.add(path)

    covered: set[str] = set()
    run_id, sid = seeded["runs"]["a1"], seeded["sessions"]["alice"]
    with Database.connect(api_db_url, migrate=False) as db:
        tel, conv = db.telemetry, db.conversations
        detail = tel.get_run(run_id)
        since = NOW - timedelta(minutes=5)
        same("/runs", {"limit": 2}, Page[rec.Run], tel.list_runs(limit=2))
        same("/runs", {"status": "error", "since": since.isoformat()}, Page[rec.Run],
             tel.list_runs(status="error", since=since))  # fmt: skip
        same(
            "/runs", {"metadata": '{"k": "a3"}'}, Page[rec.Run], tel.list_runs(metadata={"k": "a3"})
        )
        same("/runs/find", {"idempotency_key": "order-17"}, rec.Run,
             tel.find_run(idempotency_key="order-17"))  # fmt: skip
        same(f"/runs/{run_id}", {}, rec.RunDetail, detail)
        same(f"/runs/{run_id}/steps", {}, list[rec.Step], detail["steps"])
        same(f"/runs/{run_id}/llm_calls", {}, list[rec.LlmCall], detail["llm_calls"])
        same(f"/runs/{run_id}/stats", {}, rec.RunStats, tel.run_stats(run_id))
        for by in ("session", "user", "graph", "model", "day"):
            same("/stats", {"by": by}, list[rec.GroupStats], tel.stats(by))  # type: ignore[arg-type]
        same("/stats", {"by": "user", "until": since.isoformat()}, list[rec.GroupStats],
             tel.stats("user", until=since))  # fmt: skip
        same("/sessions", {}, Page[Session], conv.list_sessions())
        same("/sessions", {"user": "bob"}, Page[Session], conv.list_sessions("bob"))
        same(f"/sessions/{sid}", {}, Session, conv.get_session(sid))
        for params in ({}, {"include_removed": True}, {"last": True, "limit": 2},
                       {"role": "assistant"}):  # fmt: skip
            same(f"/sessions/{sid}/messages", params, Page[Message],
                 conv.list_messages(sid, **params))  # type: ignore[arg-type]  # fmt: skip
        same(f"/sessions/{sid}/stats", {}, SessionStats, conv.session_stats(sid))
        same(f"/sessions/{sid}/analysis", {}, StoredChainAnalysis | None, conv.get_analysis(sid))
        conv.upsert_analysis(sid, {"summary": "mirrored"})
        same(f"/sessions/{sid}/analysis", {}, StoredChainAnalysis | None, conv.get_analysis(sid))

        # The store routes (LangGraph's server API) against the store's own methods.
        store = db.store
        store.put(("mirror", "alice"), "k1", {"text": "tea", "n": 1})
        store.put(("mirror", "bob"), "k2", {"text": "coffee", "n": 2})
        r = client.get("/store/items", params={"namespace": "mirror.alice", "key": "k1"})
        item = store.get(("mirror", "alice"), "k1")
        assert item is not None and _store_json(r.json()) == _store_json(item.dict())
        found = client.post(
            "/store/items/search", json={"namespace_prefix": ["mirror"], "filter": {"n": 2}}
        ).json()["items"]
        expected = store.search(("mirror",), filter={"n": 2})
        assert [_store_json(i) for i in found] == [_store_json(i.dict()) for i in expected]
        spaces = client.post("/store/namespaces", json={"prefix": ["mirror"]}).json()
        assert spaces["namespaces"] == [list(n) for n in store.list_namespaces(prefix=("mirror",))]
        covered |= {"/store/items", "/store/items/search", "/store/namespaces"}

        health = client.get("/health").json()
        assert set(health) == {"status", "migrated", *db.health().to_dict()}
        covered |= {"/health", "/health/liveness", "/health/readiness"}
    assert {p.replace(str(run_id), "{run_id}").replace(str(sid), "{session_id}")
            for p in covered} == set(ROUTES)  # fmt: skip


def _store_json(item: dict[str, Any]) -> dict[str, Any]:
    """An item as JSON, whatever the store adds beyond LangGraph's fields, times compared as
    instants (``Item.dict()`` gives ISO text)."""
    keep = ("namespace", "key", "value", "created_at", "updated_at", "score")
    out = {k: item.get(k) for k in keep if k in item}
    for k in ("created_at", "updated_at"):
        out[k] = datetime.fromisoformat(str(out[k]).replace("Z", "+00:00"))
    return out


def test_time_filters_and_lookups(client: httpx.Client, seeded: dict[str, Any]) -> None:
    recent = client.get("/runs", params={"since": (NOW - timedelta(minutes=5)).isoformat()})
    assert [r["id"] for r in recent.json()["items"]] == [
        str(seeded["runs"][k]) for k in ("b0", "a3", "a2", "a1")
    ]
    old = client.get("/runs", params={"until": "2026-01-09T00:00:00"})  # no zone: UTC
    assert [r["id"] for r in old.json()["items"]] == [str(seeded["runs"]["a0"])]
    by_day = client.get("/stats", params={"by": "day", "since": "2026-01-10"}).json()
    assert [(g["key"], g["runs"]) for g in by_day] == [("2026-01-10", 4)]
    found = client.get("/runs/find", params={"trace_id": "trace-a1"}).json()
    assert found["id"] == str(seeded["runs"]["a1"]) and found["idempotency_key"] == "order-17"
    assert client.get("/runs/find", params={"trace_id": "nope"}).status_code == 404
    assert client.get("/runs/find").status_code == 422  # exactly one key
    keyed = client.get("/runs", params={"idempotency_key": "order-17"}).json()["items"]
    assert [r["id"] for r in keyed] == [found["id"]]
    assert client.get("/runs", params={"since": "yesterday"}).status_code == 422
    assert client.get("/runs", params={"metadata": "[1]"}).status_code == 422


def test_find_and_stats_are_scoped_too(host: httpx.Client, seeded: dict[str, Any]) -> None:
    bob = {"X-User": "bob"}
    assert host.get("/pgstore/runs/find", params={"trace_id": "trace-a1"}, headers=bob)\
        .status_code == 404  # fmt: skip
    sid = seeded["sessions"]["alice"]
    for suffix in ("/stats", "/analysis", "/messages"):
        assert host.get(f"/pgstore/sessions/{sid}{suffix}", headers=bob).status_code == 404


# -- the store routes, driven by LangGraph's own SDK --------------------------------------


def test_store_routes_speak_langgraphs_server_api_scoped_by_auth(app_url: str) -> None:
    """``langgraph_sdk``'s store client against our routes, as two tenants under row-level
    security: each sees and changes only its own memories."""
    from langgraph_sdk import get_sync_client

    with LiveServer(host_app(app_url)) as http:
        base = f"{str(http.base_url).rstrip('/')}/pgstore"
        with (
            get_sync_client(url=base, headers={"X-User": "alice"}) as alice,
            get_sync_client(url=base, headers={"X-User": "bob"}) as bob,
        ):
            _store_as_two_tenants(http, alice, bob)


def _store_as_two_tenants(http: httpx.Client, alice: Any, bob: Any) -> None:
    alice.store.put_item(["notes", "alice"], key="k1", value={"text": "tea", "n": 1})
    alice.store.put_item(["notes", "alice"], key="k2", value={"text": "jam", "n": 2}, ttl=60)
    bob.store.put_item(["notes", "bob"], key="k1", value={"text": "coffee", "n": 1})

    item = alice.store.get_item(["notes", "alice"], key="k1")
    assert item["value"] == {"text": "tea", "n": 1} and item["namespace"] == ["notes", "alice"]
    found = alice.store.search_items(["notes"], filter={"n": 2})
    assert [i["key"] for i in found["items"]] == ["k2"]
    everything = alice.store.search_items(["notes"], limit=10)
    assert {tuple(i["namespace"]) for i in everything["items"]} == {("notes", "alice")}
    assert alice.store.list_namespaces(prefix=["notes"])["namespaces"] == [["notes", "alice"]]
    # bob can neither read nor delete alice's memory
    miss = http.get("/pgstore/store/items", params={"namespace": "notes.alice", "key": "k1"},
                    headers={"X-User": "bob"})  # fmt: skip
    assert miss.status_code == 404
    bob.store.delete_item(["notes", "alice"], key="k1")
    assert alice.store.get_item(["notes", "alice"], key="k1")["key"] == "k1"
    alice.store.delete_item(["notes", "alice"], key="k1")
    gone = http.get("/pgstore/store/items", params={"namespace": "notes.alice", "key": "k1"},
                    headers={"X-User": "alice"})  # fmt: skip
    assert gone.status_code == 404
    # bad input is 422, no caller is 401
    bad = http.put("/pgstore/store/items", json={"namespace": ["a.b"], "key": "k",
                   "value": {}}, headers={"X-User": "alice"})  # fmt: skip
    assert bad.status_code == 422
    assert http.post("/pgstore/store/namespaces", json={}).status_code == 401


def test_store_routes_refuse_scoped_callers_without_row_level_security(
    host: httpx.Client,
) -> None:
    """The test database's owner bypasses row-level security: memories have no owner filter
    of their own, so a scoped caller is refused rather than shown everyone's."""
    r = host.post("/pgstore/store/items/search", json={}, headers={"X-User": "alice"})
    assert r.status_code == 403 and "row-level security" in r.json()["detail"]
