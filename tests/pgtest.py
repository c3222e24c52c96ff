"""Helpers the test modules import (a plain module: ``conftest`` names clash across folders)."""

from __future__ import annotations

import os

from psycopg.conninfo import make_conninfo

#: Migrated template database, one per pytest process so parallel runs never collide.
TEMPLATE = f"pgstore_tpl_{os.getpid()}"


def url_for(server_url: str, dbname: str) -> str:
    """The server's URL pointed at another database."""
    return make_conninfo(server_url, dbname=dbname)
