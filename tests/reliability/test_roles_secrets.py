"""The app as a role without DDL rights, and no password anywhere it could leak.

The embedded server uses trust auth, so any password is accepted over the socket: the point
is that the password we put in the URL never shows up in logs, errors, reprs, health or CLI.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import chain_graph, expected_items
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from langgraph_pgstore import Database, PgStoreError

GRANTS = (
    "GRANT CONNECT ON DATABASE {db} TO {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
)


@pytest.fixture
def app_role(server_url: str, db_url: str) -> Iterator[tuple[str, str]]:
    """(url, password) of a LOGIN role with DML grants only, on a migrated database."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    password = f"Pw-{uuid.uuid4().hex}-s3cr3t"
    dbname = conninfo_to_dict(db_url)["dbname"]
    ids = {"db": sql.Identifier(dbname), "role": sql.Identifier(role)}
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ids["role"], sql.Literal(password))
        )
    with psycopg.connect(db_url, autocommit=True) as owner:
        for grant in GRANTS:
            owner.execute(sql.SQL(grant).format(**ids))
    url = make_conninfo(db_url, user=role, password=password)
    yield url, password
    with psycopg.connect(db_url, autocommit=True) as owner:
        owner.execute(sql.SQL("DROP OWNED BY {}").format(ids["role"]))
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ids["role"]))


def test_app_role_without_ddl_rights(app_role: tuple[str, str]) -> None:
    url, _pw = app_role
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE should_fail (x int)")  # the role really can't do DDL
    with Database.connect(url, migrate=True, max_size=4) as db:  # at head: no DDL attempted
        assert db.health().ok
        graph = chain_graph(steps=4, delay=0).compile(checkpointer=db.checkpointer)
        cfg = {"configurable": {"thread_id": "as-app"}}
        assert graph.invoke({"items": ["in"]}, cfg)["items"] == expected_items(4)
        assert len(list(graph.get_state_history(cfg))) == 6


def _assert_clean(password: str, *texts: Any) -> None:
    for text in texts:
        assert password not in str(text), f"password leaked in: {str(text)[:300]}"


def test_password_never_leaks(
    app_role: tuple[str, str], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    url, password = app_role
    caplog.set_level(logging.DEBUG)
    seen: list[Any] = []
    with Database.connect(url, max_size=2) as db:
        graph = chain_graph(steps=2, delay=0).compile(checkpointer=db.checkpointer)
        graph.invoke({"items": ["in"]}, {"configurable": {"thread_id": "s"}})
        report = db.health()
        seen += [repr(db), str(db), repr(db.settings), db.redacted_url, report, repr(report)]
        if hasattr(report, "model_dump_json"):
            seen.append(report.model_dump_json())
    # failures: a database that doesn't exist, a closed port, a malformed URL
    for bad in (
        make_conninfo(url, dbname="no_such_db_x"),
        make_conninfo(url, host="127.0.0.1", port="1"),
        f"postgresql://someone:{password}@127.0.0.1:1/x",
        f"postgresql+psycopg://someone:{password}@127.0.0.1:notaport/x",
        f"mysql://someone:{password}@127.0.0.1/x",
    ):
        with pytest.raises(PgStoreError) as info:
            Database.open(bad, connect_timeout=1, timeout=1)
        exc: BaseException | None = info.value
        while exc is not None:  # the whole chain, causes included
            seen += [str(exc), repr(exc)]
            exc = exc.__cause__ or exc.__context__
    out = capsys.readouterr()
    _assert_clean(password, *seen, caplog.text, out.out, out.err)


def test_cli_never_prints_the_password(
    app_role: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from langgraph_pgstore.cli import app

    url, password = app_role
    runner = CliRunner()
    outputs = []
    monkeypatch.setenv("PGSTORE_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("PGSTORE_POOL_TIMEOUT", "2")
    for env_url in (url, make_conninfo(url, dbname="no_such_db_x")):
        monkeypatch.setenv("DATABASE_URL", env_url)
        for args in (["doctor"], ["doctor", "--json"], ["migrate"], ["migrate", "--json"]):
            result = runner.invoke(app, args)
            outputs += [result.output, repr(result.exception)]
    _assert_clean(password, *outputs)
