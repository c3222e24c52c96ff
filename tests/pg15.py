"""Start Debian's PostgreSQL 15 (no pgvector) from its binaries, for the no-pgvector path.

The server runs in a temporary directory on a Unix socket only (``listen_addresses=''``),
with trust authentication, as an unprivileged user when we are root (initdb refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CANDIDATE_BINDIRS = ("/usr/lib/postgresql/15/bin",)
SUPERUSER = "postgres"


def _pg_config_bindir() -> str | None:
    exe = shutil.which("pg_config")
    if exe is None:
        return None
    out = subprocess.run([exe, "--bindir"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or None


def find_bindir() -> tuple[Path | None, str]:
    """The bin directory of a PostgreSQL 15 install, or None and the reason why not."""
    candidates = [d for d in (_pg_config_bindir(), *CANDIDATE_BINDIRS) if d]
    for candidate in candidates:
        postgres = Path(candidate) / "postgres"
        if not (postgres.exists() and (Path(candidate) / "initdb").exists()):
            continue
        out = subprocess.run([postgres, "--version"], capture_output=True, text=True, check=False)
        if " 15." in out.stdout:
            return Path(candidate), ""
    return None, f"PostgreSQL 15 binaries not found (looked in {', '.join(candidates)})"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> tuple[int | None, int | None]:
    """Uid and gid to run the server with (``nobody`` when we are root, else ourselves)."""
    if os.geteuid() != 0:
        return None, None
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


@contextmanager
def postgres15() -> Iterator[str]:
    """Yield the admin URL of a throw-away PostgreSQL 15 server; stop and delete it after."""
    bindir, reason = find_bindir()
    if bindir is None:
        raise FileNotFoundError(reason)
    uid, gid = _as_user()
    root = Path(tempfile.mkdtemp(prefix="pgstore-pg15-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if uid is not None and gid is not None:
        for path in (root, sock):
            os.chown(path, uid, gid)
    port = _free_port()
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "LC_ALL": "C", "HOME": str(root)}

    def run(*args: str) -> None:
        out = subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=False,
            user=uid,
            group=gid,
            extra_groups=[] if uid is not None else None,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.stdout}\n{out.stderr}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8")
    options = f"-c listen_addresses='' -c unix_socket_directories={sock} -p {port} -c fsync=off"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql://{SUPERUSER}@/postgres?host={sock}&port={port}"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
