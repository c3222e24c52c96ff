"""Helpers the test modules import (a plain module: ``conftest`` names clash across folders)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: Migrated template database, one per pytest process so parallel runs never collide.
TEMPLATE = f"pgstore_tpl_{os.getpid()}"


def url_for(server_url: str, dbname: str) -> str:
    """The server's URL pointed at another database."""
    return make_conninfo(server_url, dbname=dbname)


#: What an application role gets after ``migrate``: data rights only, no DDL, not the owner.
APP_GRANTS = (
    "GRANT CONNECT ON DATABASE {db} TO {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
)


@contextmanager
def app_role(db_url: str, name: str | None = None) -> Iterator[str]:
    """A LOGIN role with DML grants only on ``db_url``'s database (so row-level security
    binds it); yields its URL and drops it afterwards."""
    role = name or f"app_{uuid.uuid4().hex[:8]}"
    dbname = conninfo_to_dict(db_url)["dbname"]
    ids = {"db": sql.Identifier(str(dbname)), "role": sql.Identifier(role)}
    with psycopg.connect(db_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ids["role"]))
        for grant in APP_GRANTS:
            conn.execute(sql.SQL(grant).format(**ids))
    try:
        yield make_conninfo(db_url, user=role)
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ids["role"]))
            if name is None:
                conn.execute(sql.SQL("DROP ROLE {}").format(ids["role"]))


@contextmanager
def migrated_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """A database of its own cloned from the migrated template, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    try:
        yield url_for(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
