"""Identity, purge and export, exact: the cases issue 10 reported, as tests.

Users are their external ids (email is an attribute); ``purge_user`` deletes by owner what
the user owns in every table and nothing of a neighbour's; after it, a scan of every column of
every table (checkpoint blobs decoded) finds neither the user's id nor a text they wrote.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore
from test_api import LiveServer, host_app

from langgraph_pgstore import Database, NotFound
from langgraph_pgstore.ownership import jsonable

BLOB_TABLES = ("checkpoint_blobs", "checkpoint_writes")


def graph_for(db: Database, namespaces: tuple[tuple[str, ...], ...] = ()) -> Any:
    """A chat node that remembers the user's last words in each of ``namespaces``."""

    def chat(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict[str, Any]:
        text = str(state["messages"][-1].content)
        for ns in namespaces:
            store.put(ns, "last", {"text": text})
        return {"messages": [AIMessage(f"noted: {text}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("chat", chat)
    builder.add_edge(START, "chat")
    graph = builder.compile(checkpointer=db.checkpointer, store=db.store)
    return db.telemetry.instrument(graph)


def say(graph: Any, thread: str, text: str, **metadata: str) -> None:
    config = {"configurable": {"thread_id": thread}, "metadata": metadata}
    graph.invoke({"messages": [("user", text)]}, config)


def scan(db: Database, *needles: str) -> list[tuple[str, str, str]]:
    """``(table, column, needle)`` for every value of every table of the schema that contains
    a needle; checkpoint blobs are decoded with the saver's serializer first."""
    serde = JsonPlusSerializer()
    found = []
    with psycopg.connect(db.url) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        ]
        for table in tables:
            cur = conn.execute(f'SELECT * FROM "{table}"')
            names = [c.name for c in cur.description or []]
            for row in cur.fetchall():
                values = dict(zip(names, row, strict=True))
                if table in BLOB_TABLES and values.get("blob") is not None:
                    blob = serde.loads_typed((values["type"], bytes(values["blob"])))
                    values["blob"] = json.dumps(jsonable(blob))
                for column, value in values.items():
                    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    found += [(table, column, n) for n in needles if n in text]
    return found


def test_email_is_an_attribute_never_an_identity(db_url: str, db: Database) -> None:
    graph = graph_for(db)
    say(graph, "t-m", "hello", user_id="mallory", user_email="victim@corp.com")
    say(graph, "t-v", "my salary is 123k", user_id="victim", user_email="victim@corp.com")
    conv = db.conversations
    assert conv.get_session_by_thread("t-m").owner_id == "mallory"
    assert conv.get_session_by_thread("t-v").owner_id == "victim"
    assert {u.external_id: u.email for u in conv.list_users()} == {
        "mallory": "victim@corp.com",
        "victim": "victim@corp.com",
    }
    victim_session = conv.get_session_by_thread("t-v").id
    with LiveServer(host_app(db_url)) as http:  # the admin role: the owner filters scope it
        mallory = {"X-User": "mallory"}
        listed = http.get("/pgstore/sessions", headers=mallory).json()["items"]
        assert [s["thread_id"] for s in listed] == ["t-m"]
        leak = http.get(f"/pgstore/sessions/{victim_session}/messages", headers=mallory)
        assert leak.status_code == 404 and "123k" not in leak.text
        for path in ("/runs", "/stats", "/sessions"):
            assert "123k" not in http.get(f"/pgstore{path}", headers=mallory).text
    # a run can't join a thread another user owns, even with tenancy off or as the admin
    with pytest.raises(Exception, match="belongs to another user"):
        say(graph, "t-v", "let me in", user_id="mallory")
    assert "let me in" not in str(db.checkpointer.get_tuple({"configurable": {"thread_id": "t-v"}}))


def test_purge_is_exact(db: Database) -> None:
    ada, bob = "ada-5f1e", "bob-77c2"
    secret = "lives in LISBON-8842"
    graph = graph_for(db, (("users", ada), ("memories", ada), ("notes",)))
    say(graph, "t-ada", secret, user_id=ada, user_email="ada@example.com")
    # her first turn on another thread had no user: that thread is hers once she appears,
    # also from another process (a new Database has an empty mirror cache)
    say(graph_for(db), "t-later", f"anonymous first turn, {secret}")
    with Database.connect(db.url, max_size=2) as elsewhere:
        say(graph_for(elsewhere), "t-later", "second turn", user_id=ada)
    # ... and in this process too (the cache knew the thread without owner)
    say(graph_for(db), "t-cached", f"again anonymous, {secret}")
    say(graph_for(db), "t-cached", "now it's me", user_id=ada)
    db.conversations.upsert_analysis(
        db.conversations.get_session_by_thread("t-ada").id, {"summary": secret}
    )
    with db.on_behalf_of(ada):
        db.store.put(("imported",), "profile", {"text": secret})
    # neighbours: bob (same namespaces layout), a user named "shared", a shared memory
    say(graph_for(db, (("users", bob), ("notes",))), "t-bob", "bob's words", user_id=bob)
    db.store.put(("shared", "faq"), "hours", {"text": "9 to 5"})
    say(graph_for(db), "t-shared", "I am the user called shared", user_id="shared")
    assert db.telemetry.flush(10)
    before = db.export_user(bob)

    assert db.conversations.get_session_by_thread("t-later").owner_id == ada
    counts = db.purge_user(ada)
    # ("notes",) "last" was overwritten by bob's run since: it holds his words, it is his
    assert counts["users"] == 1 and counts["sessions"] == 3 and counts["memory_items"] == 3
    assert counts["chain_analysis_results"] == 1 and counts["runs"] == 5
    assert counts["checkpoints"] > 0 and counts["checkpoint_blobs"] > 0
    assert scan(db, ada, "LISBON-8842") == []
    for thread in ("t-ada", "t-later", "t-cached"):
        assert db.checkpointer.get_tuple({"configurable": {"thread_id": thread}}) is None

    after = db.export_user(bob)
    for table, rows in before["tables"].items():  # bob's rows, every one, untouched
        assert len(after["tables"][table]) == len(rows), table
    assert db.store.get(("users", bob), "last") is not None
    assert db.store.get(("notes",), "last").value == {"text": "bob's words"}  # type: ignore[union-attr]
    assert db.purge_user("shared")["sessions"] == 1
    assert db.store.get(("shared", "faq"), "hours") is not None  # a user's name is no label
    with pytest.raises(NotFound):
        db.purge_user(ada)


def test_uuid_shaped_external_id_everywhere(db_url: str, db: Database) -> None:
    user = str(uuid.uuid4())
    say(graph_for(db, (("users", user),)), "t-u", "uuid-shaped TEXT-1299", user_id=user)
    assert db.conversations.get_user(user).external_id == user
    assert [s.thread_id for s in db.conversations.list_sessions(user)["items"]] == ["t-u"]
    with LiveServer(host_app(db_url)) as http:
        listed = http.get("/pgstore/sessions", headers={"X-User": user}).json()["items"]
        assert [s["thread_id"] for s in listed] == ["t-u"]
    assert db.purge_user(user)["users"] == 1
    assert scan(db, user, "TEXT-1299") == []


def test_export_user_holds_everything_and_is_json(db_url: str, db: Database) -> None:
    graph = graph_for(db, (("users", "eve"),))
    say(graph, "t-eve", "eve's unique EXPORT-5510", user_id="eve", user_email="eve@x.io")
    assert db.telemetry.flush(10)
    data = db.export_user("eve")
    json.dumps(data)  # plain JSON
    tables = data["tables"]
    assert data["user"]["email"] == "eve@x.io"
    for table in ("sessions", "messages", "runs", "steps", "memory_items", "checkpoints"):
        assert tables[table], table
    decoded = json.dumps(tables["checkpoint_blobs"]) + json.dumps(tables["checkpoint_writes"])
    assert "EXPORT-5510" in decoded  # blobs decoded, not base64
    assert all(r["owner_id"] == "eve" for rows in tables.values() for r in rows)

    exe = Path(sys.executable).with_name("langgraph-pgstore")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "langgraph_pgstore.cli"]
    out = subprocess.run(
        [*cmd, "--url", db_url, "export-user", "eve"], capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout)["tables"]["messages"][0]["owner_id"] == "eve"
    purged = subprocess.run(
        [*cmd, "--url", db_url, "purge-user", "eve", "--yes", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(purged.stdout)["users"] == 1
    missing = subprocess.run([*cmd, "--url", db_url, "export-user", "eve"], capture_output=True)
    assert missing.returncode == 2 and b"no user" in missing.stderr


def test_maintenance_refuses_a_role_subject_to_rls(app_url: str, db: Database) -> None:
    exe = Path(sys.executable).with_name("langgraph-pgstore")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "langgraph_pgstore.cli"]
    for args in (["purge-user", "x", "--yes"], ["export-user", "x"], ["sweep"]):
        result = subprocess.run([*cmd, "--url", app_url, *args], capture_output=True, text=True)
        assert result.returncode == 2, result
        assert "admin path" in result.stderr and "Traceback" not in result.stderr
    status = subprocess.run(
        [*cmd, "--url", app_url, "tenancy", "status", "--json"], capture_output=True, text=True
    )
    assert json.loads(status.stdout) == {
        "tenancy": "on",
        "role": psycopg.conninfo.conninfo_to_dict(app_url)["user"],
        "admin": False,
    }
