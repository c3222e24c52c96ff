"""Spill files: rows the writer could not write before the process exited.

When a process exits while its database is down, the pending events are folded into rows and
written to ``<spill_dir>/<database key>.<pid>.<ns>.jsonl`` (one row per line, written to a
temporary name and renamed, so a reader never sees half a file). The next writer for the same
database (same host, port, database and schema) claims each file by renaming it and replays
its rows through the normal upserts, which are idempotent: replaying twice, or replaying a
row that was also written, changes nothing. The key holds no user name or password.

Values are tagged JSON: ``{"$u": uuid}``, ``{"$d": decimal}``, ``{"$j": json text}`` (a jsonb
column), ``{"$t": iso timestamp}``; other values (times as epoch seconds) are plain JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

from psycopg.conninfo import conninfo_to_dict

from .records import LLM_COLS, RUN_COLS, STEP_COLS
from .rows import RawJson, Rows, merge

__all__ = ["SpilledRow", "claim", "database_key", "fold_spilled", "read", "write"]

#: Kinds of lines that are table rows (the others: runs that ended, tenants of runs).
ROWS = ("runs", "steps", "calls")
_TABLES = (*ROWS, "ended", "tenant")
_COLS = {"runs": RUN_COLS, "steps": STEP_COLS, "calls": LLM_COLS}


class SpilledRow(NamedTuple):
    """One row read back from a spill file (``table`` 'ended' holds a run id in ``row``,
    'tenant' a ``(run id, tenant)`` pair: the scope the run's rows are written under)."""

    table: str
    row: Any


def database_key(url: str, options: str | None = None) -> str:
    """A short stable name for a database: host, port, database and search path, hashed."""
    info = conninfo_to_dict(url)
    parts = [str(info.get(k) or "") for k in ("host", "port", "dbname")]
    parts.append(options or str(info.get("options") or ""))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _enc(value: Any) -> Any:
    if isinstance(value, UUID):
        return {"$u": str(value)}
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, RawJson):
        return {"$j": str(value)}
    if isinstance(value, list):
        return [_enc(v) for v in value]
    return value


def _dec(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if tag == "$u":
            return UUID(raw)
        if tag == "$t":
            return datetime.fromisoformat(raw)
        if tag == "$d":
            return Decimal(raw)
        if tag == "$j":
            return RawJson(raw)
    if isinstance(value, list):
        return [_dec(v) for v in value]
    return value


def write(directory: Path, key: str, rows: Rows) -> tuple[Path, int]:
    """Write ``rows`` to a new spill file; returns its path and the number of rows."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{key}.{os.getpid()}.{time.time_ns()}.jsonl"
    tmp = directory / (name + ".tmp")
    n = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # rows may hold user data
    with open(fd, "w", encoding="utf-8") as fh:
        for table, data in (("runs", rows.runs), ("steps", rows.steps), ("calls", rows.calls)):
            for row in data.values():
                fh.write(json.dumps([table, {k: _enc(v) for k, v in row.items()}]) + "\n")
                n += 1
        for rid in rows.ended:
            fh.write(json.dumps(["ended", str(rid)]) + "\n")
        for rid, tenant in rows.tenants.items():
            fh.write(json.dumps(["tenant", [str(rid), tenant]]) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    path = directory / name
    os.replace(tmp, path)
    return path, n


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(directory: Path, key: str) -> list[Path]:
    """Spill files of this database, renamed so that no other process replays them too.

    Files a dead process had claimed are taken over.
    """
    if not directory.is_dir():
        return []
    mine = f".claimed-{os.getpid()}"
    out = []
    for path in sorted(directory.glob(f"{key}.*.jsonl*")):
        name = path.name
        if name.endswith(".tmp"):
            continue
        if ".claimed-" in name:
            owner = int(name.rsplit("-", 1)[1])
            if owner == os.getpid():
                out.append(path)
                continue
            if _pid_alive(owner):
                continue
            name = name.rsplit(".claimed-", 1)[0]
        target = directory / (name + mine)
        with contextlib.suppress(FileNotFoundError):  # another process was faster
            os.replace(path, target)
            out.append(target)
    return out


def read(path: Path) -> Iterator[SpilledRow]:
    """The rows of one spill file; a torn last line (crash while writing) is skipped."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                table, raw = json.loads(line)
            except ValueError:
                continue
            if table not in _TABLES:
                continue
            if table == "ended":
                yield SpilledRow(table, UUID(raw))
            elif table == "tenant":
                yield SpilledRow(table, (UUID(raw[0]), str(raw[1])))
            else:
                yield SpilledRow(table, {k: _dec(v) for k, v in raw.items()})


def fold_spilled(rows: Rows, item: SpilledRow) -> None:
    """Merge one spilled row into ``rows`` (the same merge as events: non-None wins)."""
    if item.table == "ended":
        rows.ended.append(item.row)
        return
    if item.table == "tenant":
        rid, tenant = item.row
        rows.tenants[rid] = tenant
        return
    cols = _COLS[item.table]
    merge(getattr(rows, item.table), cols, item.row["id"], {c: item.row.get(c) for c in cols})
