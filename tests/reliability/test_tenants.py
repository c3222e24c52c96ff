"""Ownership and tenancy, tried as an adversarial tenant would.

Two tenants (alice, bob) write through the application role (DML grants only, so row-level
security binds it), each with ``connect(url, tenant=...)``. Then bob tries every table with
raw SQL and every public method on alice's rows; a connection with no tenant tries too; the
admin path (the tables' owner) must still see and maintain everything.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import Header
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore
from psycopg.rows import dict_row
from test_telemetry_fakes import UsageChatModel

from langgraph_pgstore import (
    AsyncDatabase,
    ChainAnalysis,
    ConfigurationError,
    Database,
    NotFound,
    PermissionDenied,
)
from langgraph_pgstore.tenancy import OWNED_TABLES

TENANTS = ("alice", "bob")
INDEX: Any = {"dims": 8, "embed": DeterministicFakeEmbedding(size=8), "fields": ["text"]}


def secret(user: str) -> str:
    return f"{user} says the code is {user.upper()}-7731"


def chat_builder() -> StateGraph[Any]:
    """One node: remembers the last message (in a namespace named after no one), asks a model."""

    def chat(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict[str, Any]:
        text = str(state["messages"][-1].content)
        thread = config["configurable"]["thread_id"]
        store.put(("notes", "inbox"), f"last-{thread}", {"text": text})
        reply = UsageChatModel(reply=f"noted: {text}").invoke(state["messages"])
        return {"messages": [reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    return builder


def chat_graph(db: Database, store: BaseStore) -> Any:
    graph = chat_builder().compile(checkpointer=db.checkpointer, store=store)
    return db.telemetry.instrument(graph)


def seed(app_url: str, db: Database) -> dict[str, dict[str, Any]]:
    """Each tenant, through the application role: a thread, a memory with its vector, an
    analysis, a recorded run with a step and an LLM call."""
    db.memory(index=INDEX).setup()  # DDL (the per-dimension index) is the owner's job
    out: dict[str, dict[str, Any]] = {}
    for user in TENANTS:
        with Database.connect(app_url, tenant=user, max_size=4) as t:
            graph = chat_graph(t, t.memory(index=INDEX))
            config = {"configurable": {"thread_id": f"t-{user}"}}
            graph.invoke({"messages": [("user", secret(user))]}, config)
            session = t.conversations.get_session_by_thread(f"t-{user}")
            t.conversations.upsert_analysis(session.id, ChainAnalysis(summary=f"{user}'s"))
            assert t.telemetry.flush(10) and t.telemetry.rejected_events == 0
            run = t.telemetry.list_runs()["items"][0]
            detail = t.telemetry.get_run(run["id"])  # every run, step and LLM call, finished
            assert run["status"] == "success" and run["owner_id"] == user
            assert [s["status"] for s in detail["steps"]] == ["success"]
            assert [c["status"] for c in detail["llm_calls"]] == ["success"]
            out[user] = {"session": session, "run": run["id"], "config": config}
    return out


def values(conn: psycopg.Connection[Any], query: str) -> list[Any]:
    """The first column of every row (the pool's connections return dict rows)."""
    return [next(iter(row.values())) for row in conn.execute(query).fetchall()]


def owners(db: Database) -> dict[str, dict[str | None, int]]:
    """Rows per owner of every owned table, seen by the admin path."""
    out: dict[str, dict[str | None, int]] = {}
    with db.pool.connection() as conn:
        for table in OWNED_TABLES:
            rows = conn.execute(
                f"SELECT owner_id, count(*) AS n FROM {table} GROUP BY 1"
            ).fetchall()
            out[table] = {r["owner_id"]: r["n"] for r in rows}  # type: ignore[call-overload]
    return out


@pytest.fixture
def seeded(app_url: str, db: Database) -> dict[str, dict[str, Any]]:
    data = seed(app_url, db)
    everything = owners(db)
    for table, counts in everything.items():  # every table has rows of both, and only those
        assert set(counts) == set(TENANTS), (table, counts)
    data["before"] = everything
    return data


def test_raw_sql_of_a_tenant_reaches_only_its_rows(
    app_url: str, db: Database, seeded: dict[str, Any]
) -> None:
    with Database.connect(app_url, tenant="bob") as bob, bob.transaction() as conn:
        for table in OWNED_TABLES:
            mine = seeded["before"][table]["bob"]
            assert values(conn, f"SELECT count(*) FROM {table}") == [mine], table
            assert values(conn, f"SELECT DISTINCT owner_id FROM {table}") == ["bob"], table
            column = "name" if table == "users" else "owner_id"  # users.owner_id is generated
            changed = conn.execute(
                f"UPDATE {table} SET {column} = {column} WHERE owner_id = 'alice'"
            ).rowcount
            assert changed == 0, table
            assert conn.execute(f"DELETE FROM {table} WHERE owner_id = 'alice'").rowcount == 0
            if table != "users":  # nor give his rows to alice
                with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                    conn.execute(f"UPDATE {table} SET owner_id = 'alice'")
        inserts = (
            "INSERT INTO sessions (thread_id, owner_id) VALUES ('forged', 'alice')",
            "INSERT INTO runs (id, owner_id) VALUES (gen_random_uuid(), 'alice')",
            "INSERT INTO memory_items (prefix, key, value, owner_id) "
            "VALUES ('notes.inbox', 'forged', '{}', 'alice')",
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint, "
            "metadata, owner_id) VALUES ('t-alice', '', 'forged', '{}', '{}', 'alice')",
            "INSERT INTO users (external_id) VALUES ('alice2')",
        )
        for statement in inserts:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
        # A row inserted without an owner takes the tenant's (the checkpoint column default).
        assert values(
            conn,
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint, "
            "metadata) VALUES ('t-raw', '', 'raw', '{}', '{}') RETURNING owner_id",
        ) == ["bob"]
        conn.execute("DELETE FROM checkpoints WHERE checkpoint_id = 'raw'")
    assert owners(db) == seeded["before"]


def alice_rows(db: Database) -> dict[str, int]:
    return {table: counts.get("alice", 0) for table, counts in owners(db).items()}


def test_public_methods_of_a_tenant_reach_only_its_rows(
    app_url: str, db: Database, seeded: dict[str, Any]
) -> None:
    alice = seeded["alice"]
    a_cfg, a_session, a_run = alice["config"], alice["session"], alice["run"]
    before = alice_rows(db)
    with Database.connect(app_url, tenant="bob") as bob:
        # telemetry
        tel = bob.telemetry
        assert [r["owner_id"] for r in tel.list_runs()["items"]] == ["bob"]
        assert tel.list_runs(owner_id="alice")["items"] == []
        with pytest.raises(NotFound):
            tel.get_run(a_run)
        with pytest.raises(NotFound):
            tel.run_stats(a_run)
        assert [g["key"] for g in tel.stats("session")] == ["t-bob"]
        # checkpointer: get, list, put, copy, delete, delete_for_runs, retention
        saver = bob.checkpointer
        assert saver.get_tuple(a_cfg) is None
        assert list(saver.list(a_cfg)) == []
        mine = list(saver.list(None))
        assert mine and {c.config["configurable"]["thread_id"] for c in mine} == {"t-bob"}
        graph = chat_graph(bob, bob.memory(index=INDEX))
        assert graph.get_state(a_cfg).values == {}
        with pytest.raises(PermissionDenied):  # alice's thread: her session refuses him
            graph.invoke({"messages": [("user", "hijack")]}, a_cfg)
        with pytest.raises(PermissionDenied):  # a run claiming to be alice's
            graph.invoke(
                {"messages": [("user", "x")]},
                {"configurable": {"thread_id": "t-new"}, "metadata": {"user_id": "alice"}},
            )
        saver.copy_thread("t-alice", "stolen")
        assert saver.get_tuple({"configurable": {"thread_id": "stolen"}}) is None
        saver.delete_thread("t-alice")
        alice_runs = [c.metadata.get("run_id") for c in db.checkpointer.list(a_cfg)]
        saver.delete_for_runs([str(r) for r in alice_runs if r])
        with pytest.raises(PermissionDenied):
            saver.delete_stale_threads(timedelta(0))
        saver.prune(["t-alice"], strategy="delete")
        saver.prune(["t-alice", "t-bob"])  # keep_latest, in his own transactions
        assert len(list(saver.list({"configurable": {"thread_id": "t-bob"}}))) == 1
        # memory store: get, search, list_namespaces, put, delete
        store = bob.memory(index=INDEX)
        key = "last-t-alice"
        assert store.get(("notes", "inbox"), key) is None
        hits = store.search(("notes",), query=secret("alice"))
        assert [h.key for h in hits] == ["last-t-bob"]
        assert store.search(("notes",), query="ALICE-7731", mode="keyword") == []
        assert store.list_namespaces() == [("notes", "inbox")]
        with pytest.raises(PermissionDenied):
            store.put(("notes", "inbox"), key, {"text": "overwrite hers"})
        store.delete(("notes", "inbox"), key)  # deletes nothing of hers
        store.put(("users", "alice", "bob"), "planted", {"text": "injected into her labels"})
        # conversations
        conv = bob.conversations
        assert [s.thread_id for s in conv.list_sessions()["items"]] == ["t-bob"]
        for call in (
            lambda: conv.get_session(a_session.id),
            lambda: conv.get_session_by_thread("t-alice"),
            lambda: conv.list_messages(a_session.id),
            lambda: conv.count_messages(a_session.id),
            lambda: conv.session_stats(a_session.id),
            lambda: conv.get_analysis(a_session.id),
            lambda: conv.delete_message(a_session.id, "any"),
            lambda: conv.add_message(a_session.id, "user", "injected"),
            lambda: conv.upsert_analysis(a_session.id, ChainAnalysis(summary="forged")),
            lambda: conv.rename_session(a_session.id, "mine"),
            lambda: conv.delete_session(a_session.id),
            lambda: conv.get_user("alice"),
        ):
            with pytest.raises(NotFound):
                call()
        assert conv.search_messages("ALICE-7731") == []
        assert conv.search_messages("ALICE-7731", user="alice") == []
        assert [u.external_id for u in conv.list_users()] == ["bob"]
        with pytest.raises(PermissionDenied):
            conv.get_or_create_user("alice")
        with pytest.raises(PermissionDenied):
            conv.create_session("forged", user="alice")
        # maintenance is the admin's
        for maintenance in (lambda: bob.purge_user("alice"), lambda: bob.export_user("alice")):
            with pytest.raises(PermissionDenied):
                maintenance()
    assert alice_rows(db) == before  # nothing of alice's was read into his rows or changed
    assert db.checkpointer.get_tuple(a_cfg) is not None
    # labels decide nothing: neither alice nor a tenant named after a label sees his memory
    for user in ("alice", "users"):
        with Database.connect(app_url, tenant=user) as other:
            assert other.memory(index=INDEX).search(("users",), query="injected") == []
            assert other.store.list_namespaces(prefix=("users",)) == []


def test_no_tenant_reads_and_writes_only_shared_rows(
    app_url: str, db: Database, seeded: dict[str, Any]
) -> None:
    with Database.connect(app_url) as anon:
        with anon.transaction() as conn:
            for table in OWNED_TABLES:
                assert values(conn, f"SELECT count(*) FROM {table}") == [0], table
        assert anon.checkpointer.get_tuple(seeded["alice"]["config"]) is None
        assert anon.conversations.list_sessions()["items"] == []
        assert anon.telemetry.list_runs()["items"] == []
        # it may write shared rows: a run without user, a memory outside any run
        graph = chat_graph(anon, anon.store)
        cfg = {"configurable": {"thread_id": "t-anon"}}
        graph.invoke({"messages": [("user", "anonymous")]}, cfg)
        anon.store.put(("shared", "faq"), "hours", {"text": "9 to 5"})
        assert anon.checkpointer.get_tuple(cfg) is not None
        # ... but nothing on behalf of a user: fail closed
        with pytest.raises(PermissionDenied):
            graph.invoke(
                {"messages": [("user", "x")]},
                {"configurable": {"thread_id": "t-u"}, "metadata": {"user_id": "alice"}},
            )
        with anon.on_behalf_of("alice"), pytest.raises(PermissionDenied):
            anon.store.put(("shared", "faq"), "mine", {"text": "x"})
    shared = owners(db)
    assert shared["checkpoints"][None] > 0 and shared["memory_items"][None] == 2
    with Database.connect(app_url, tenant="alice") as alice:
        # tenants read shared memories, but can't change them
        assert alice.store.get(("shared", "faq"), "hours") is not None
        with pytest.raises(PermissionDenied):
            alice.store.put(("shared", "faq"), "hours", {"text": "always open"})
        assert alice.checkpointer.get_tuple({"configurable": {"thread_id": "t-anon"}}) is None
    assert db.store.get(("shared", "faq"), "hours").value == {"text": "9 to 5"}  # type: ignore[union-attr]


def test_admin_path_and_the_switch(app_url: str, db: Database, seeded: dict[str, Any]) -> None:
    assert db.bypasses_rls and db.health().admin and db.health().tenancy == "on"
    with pytest.raises(PermissionDenied):  # an admin can't act for a tenant: it would see all
        Database.connect(db.url, tenant="alice").__enter__()
    with pytest.raises(PermissionDenied):
        db.tenant("alice").__enter__()
    with Database.connect(app_url) as app:
        assert not app.bypasses_rls and app.health().admin is False
        with pytest.raises(PermissionDenied):  # only the tables' owner switches tenancy
            app.set_tenancy(False)
        assert app.conversations.list_sessions()["items"] == []
        assert db.set_tenancy(False) == "off"
        assert app.tenancy_state() == "off" and app.health().ok
        assert len(app.conversations.list_sessions()["items"]) == 2  # off: no isolation
        assert db.set_tenancy(True) == "on"
        assert app.conversations.list_sessions()["items"] == []
    export = db.export_user("alice")
    assert export["user"]["external_id"] == "alice"
    assert db.purge_user("alice")["checkpoints"] > 0
    assert set(owners(db)["checkpoints"]) == {"bob"}


def test_tenant_scope_per_request(app_url: str, db: Database, seeded: dict[str, Any]) -> None:
    """One pool for every tenant: the host enters a scope per request (threads, tasks)."""
    with Database.connect(app_url, max_size=3) as app:
        seen: dict[str, list[str]] = {}
        errors: list[BaseException] = []

        def request(user: str) -> None:
            try:
                for _ in range(20):
                    with app.tenant(user):
                        threads = [s.thread_id for s in app.conversations.list_sessions()["items"]]
                        state = app.checkpointer.get_tuple(seeded[user]["config"])
                        assert state is not None
                    seen.setdefault(user, []).extend(threads)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=request, args=(u,)) for u in TENANTS * 3]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert not errors, errors[:2]
        assert set(seen["alice"]) == {"t-alice"} and set(seen["bob"]) == {"t-bob"}
        assert app.conversations.list_sessions()["items"] == []  # outside any scope: none

    async def scoped(adb: AsyncDatabase, user: str) -> set[str]:
        out = set()
        for _ in range(10):
            async with adb.tenant(user):
                out |= {s.thread_id for s in (await adb.conversations.alist_sessions())["items"]}
                await asyncio.sleep(0)
        return out

    async def main() -> list[set[str]]:
        async with AsyncDatabase.connect(app_url, max_size=2) as adb:
            return await asyncio.gather(*(scoped(adb, u) for u in TENANTS * 2))

    assert asyncio.run(main()) == [{"t-alice"}, {"t-bob"}] * 2


async def optional_user(x_user: str | None = Header(default=None)) -> str | None:
    """An app's optional authentication: None means "nobody", never "everyone"."""
    return x_user


def test_the_http_api_answers_for_the_caller_only(app_url: str, seeded: dict[str, Any]) -> None:
    from test_api import LiveServer, host_app

    alice, bob = {"X-User": "alice"}, {"X-User": "bob"}
    a_session, a_run = seeded["alice"]["session"].id, seeded["alice"]["run"]
    with LiveServer(host_app(app_url, auth=optional_user, ui=True)) as http:
        for path in ("/runs", "/sessions", "/stats", f"/sessions/{a_session}", "/ui/"):
            assert http.get(f"/pgstore{path}").status_code == 401, path
        sessions = http.get("/pgstore/sessions", headers=bob).json()["items"]
        assert [s["thread_id"] for s in sessions] == ["t-bob"]
        for path in (
            f"/sessions/{a_session}",
            f"/sessions/{a_session}/messages",
            f"/runs/{a_run}",
            f"/runs/{a_run}/steps",
            f"/runs/{a_run}/llm_calls",
            f"/runs/{a_run}/stats",
            f"/ui/runs/{a_run}",  # the web UI's pages act for the caller too
        ):
            assert http.get(f"/pgstore{path}", headers=bob).status_code == 404, path
            assert http.get(f"/pgstore{path}", headers=alice).status_code == 200, path
        texts = http.get(f"/pgstore/sessions/{a_session}/messages", headers=alice).text
        assert "ALICE-7731" in texts
        by_session = http.get("/pgstore/stats?by=session", headers=bob).json()
        assert [g["key"] for g in by_session] == ["t-bob"]
        page = http.get("/pgstore/ui/", headers=bob).text
        assert str(seeded["bob"]["run"]) in page and str(a_run) not in page
        widened = http.get("/pgstore/ui/?user=alice", headers=bob).text  # can't widen the scope
        assert str(a_run) not in widened


def test_an_auth_returning_an_internal_uuid_names_nobody(
    app_url: str, seeded: dict[str, Any]
) -> None:
    from test_api import LiveServer, host_app

    async def by_uuid() -> uuid.UUID:
        return seeded["alice"]["session"].user_id  # type: ignore[no-any-return]

    with LiveServer(host_app(app_url, auth=by_uuid)) as http:
        response = http.get("/pgstore/sessions")
        assert response.status_code == 200 and response.json()["items"] == []


def test_plain_postgres_saver_reads_and_writes_the_same_tables(
    app_url: str, db: Database, seeded: dict[str, Any]
) -> None:
    """PostgresSaver's own INSERTs fill ``owner_id`` from the transaction's settings (the
    column default), and each saver reads what the other wrote."""
    cfg = {"configurable": {"thread_id": "t-plain"}}
    with PostgresSaver.from_conn_string(app_url) as plain:  # unscoped application role
        theirs = chat_builder().compile(checkpointer=plain, store=db.store)
        theirs.invoke({"messages": [("user", "written by PostgresSaver")]}, cfg)
        ours = db.checkpointer.get_tuple(cfg)
        assert ours is not None and len(ours.checkpoint["channel_values"]["messages"]) == 2
        with Database.connect(app_url) as anon:  # shared rows: the unscoped role reads them
            assert anon.checkpointer.get_tuple(cfg) is not None
        # and it reads what we wrote, tenant rows included (as the admin)
    with PostgresSaver.from_conn_string(db.url) as admin_plain:
        state = admin_plain.get_tuple(seeded["alice"]["config"])
        assert state is not None
        assert secret("alice") in str(state.checkpoint["channel_values"]["messages"])
    # a host that sets the tenant itself gets tenant-owned rows from PostgresSaver unchanged
    with psycopg.connect(app_url, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SET pgstore.tenant = 'carol'")  # session-level: a host's own choice
        saver = PostgresSaver(conn)
        graph = chat_builder().compile(checkpointer=saver, store=db.store)
        graph.invoke({"messages": [AIMessage("hi carol")]}, {"configurable": {"thread_id": "c"}})
    assert owners(db)["checkpoints"].get("carol", 0) > 0
    assert set(owners(db)["checkpoint_blobs"]) >= {"carol", None}


def test_tenant_names_are_ids_not_sql(db: Database, app_url: str) -> None:
    with Database.connect(app_url, tenant="alice' OR true --") as odd:
        assert odd.conversations.list_sessions()["items"] == []
        odd.store.put(("x",), "k", {"v": 1})
    with Database.connect(app_url, tenant="first.last@example.com") as dotted:
        dotted.store.put(("users", "first"), "k", {"v": 2})  # a dot in the id is no label
        assert dotted.store.get(("users", "first"), "k") is not None
    assert owners(db)["memory_items"] == {"alice' OR true --": 1, "first.last@example.com": 1}
    for bad in ("", "tab\there", "nul\x00", "x" * 300):
        with pytest.raises(ConfigurationError):
            Database.connect(app_url, tenant=bad).__enter__()


def test_the_ttl_sweep_reclaims_every_tenants_expired_items(app_url: str, db: Database) -> None:
    """The sweeper acts for no tenant (a background thread), yet reclaims the expired items
    of every tenant, vectors included; live items stay."""
    for user in TENANTS:
        with Database.connect(app_url, tenant=user, max_size=2) as t:
            store = t.memory(ttl={"default_ttl": 0.001})  # minutes: 60 ms
            store.put(("notes",), f"old-{user}", {"text": "expires"})
            store.put(("notes",), f"live-{user}", {"text": "stays"}, ttl=None)
    time.sleep(0.3)
    with Database.connect(app_url, max_size=2) as app:  # no tenant, as the sweeper thread
        assert app.memory().sweep_ttl() == 2
        assert app.memory().sweep_ttl() == 0
    with psycopg.connect(db.url, row_factory=dict_row) as conn:  # the admin path: every row
        keys = values(conn, "SELECT key FROM memory_items WHERE prefix = 'notes' ORDER BY key")
    assert keys == ["live-alice", "live-bob"]


#: Embedded / all messages of the embedder tests' threads, per owner.
EMBEDDED_SQL = (
    "SELECT m.owner_id, count(*) FILTER (WHERE m.embedding IS NOT NULL) AS done,"
    " count(*) AS n FROM messages m JOIN sessions s ON s.id = m.session_id"
    " WHERE s.thread_id LIKE 'e-%%' GROUP BY 1 ORDER BY 1"
)


async def embedded_per_owner(admin_url: str) -> list[tuple[str, int, int]]:
    """What the background embedder has done, waited for (no flush(): that would embed in
    the caller's scope, not the background's)."""
    deadline = time.monotonic() + 20
    with psycopg.connect(admin_url, row_factory=dict_row, autocommit=True) as admin:
        while True:
            rows = admin.execute(EMBEDDED_SQL).fetchall()
            if all(r["done"] == r["n"] for r in rows) or time.monotonic() > deadline:
                return [(r["owner_id"], r["done"], r["n"]) for r in rows]
            await asyncio.sleep(0.1)


def fake_embed(texts: list[str]) -> list[list[float]]:
    return [[1.0, float(len(t)), 0.5] for t in texts]


def embed_config(user: str) -> RunnableConfig:
    return {"configurable": {"thread_id": f"e-{user}"}, "metadata": {"user_id": user}}


async def test_the_background_embedder_embeds_every_tenants_messages(
    app_url: str, db: Database
) -> None:
    """One hub for every tenant (a scope per request): the embedder's thread acts for no
    tenant, yet embeds each tenant's messages, acting for the tenants whose writes it saw."""
    with Database.connect(app_url, max_size=4) as app:
        app.conversations.embedder = fake_embed
        graph = chat_graph(app, app.memory())
        for user in TENANTS:
            with app.tenant(user):
                graph.invoke({"messages": [("user", secret(user))]}, embed_config(user))
        assert await embedded_per_owner(db.url) == [("alice", 2, 2), ("bob", 2, 2)]
        assert app.conversations.embedder_status().healthy


async def test_the_async_background_embedder_embeds_every_tenants_messages(
    app_url: str, db: Database
) -> None:
    async with AsyncDatabase.connect(app_url, max_size=4) as app:
        app.conversations.embedder = fake_embed
        graph = chat_builder().compile(checkpointer=app.checkpointer, store=app.memory())
        for user in TENANTS:
            async with app.tenant(user):
                await graph.ainvoke({"messages": [("user", secret(user))]}, embed_config(user))
        assert await embedded_per_owner(db.url) == [("alice", 2, 2), ("bob", 2, 2)]
        assert app.conversations.embedder_status().healthy
