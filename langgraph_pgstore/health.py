"""Health checks: connectivity, server version, extensions, migration revision, tenancy, pool."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from langgraph.checkpoint.postgres.base import MIGRATIONS as CHECKPOINT_MIGRATIONS

from ._ops import Op, Query
from .migrate import current_revision, head_revision
from .tenancy import role_op, status_op

__all__ = ["HealthReport", "probe"]

#: Extensions we use when present.
EXTENSIONS = ("vector", "pg_textsearch", "vectorscale")

PROBE_SQL = """
SELECT current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       current_database() AS database,
       current_user AS "user",
       current_schema() AS schema
"""

EXTENSIONS_SQL = """
SELECT name, installed_version, default_version
FROM pg_available_extensions WHERE name = ANY(%s)
"""

CHECKPOINT_VERSION_SQL = "SELECT coalesce(max(v), -1) AS v FROM checkpoint_migrations"


@dataclass
class HealthReport:
    """What ``doctor`` prints and ``/health`` returns; ``ok`` is the verdict."""

    ok: bool
    url: str
    latency_ms: float | None = None
    server_version: str | None = None
    database: str | None = None
    user: str | None = None
    schema: str | None = None
    extensions: dict[str, dict[str, Any]] = field(default_factory=dict)
    revision: str | None = None
    head: str = field(default_factory=head_revision)
    checkpoint_version: int | None = None
    tenancy: str | None = None
    """``on`` (row-level security enforces owners), ``off``, ``partial`` or ``absent``."""
    admin: bool | None = None
    """The role bypasses row-level security (superuser, BYPASSRLS, owner): sees every row."""
    pool: dict[str, int] = field(default_factory=dict)
    background: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Liveness of background jobs (``running``, ``healthy``, ``last_error``, ...) by name."""
    problems: list[str] = field(default_factory=list)
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def migrated(self) -> bool:
        return self.revision == self.head

    def add_background(self, name: str, status: Any) -> None:
        """Report a background job's status (a dataclass or a mapping with ``healthy`` and
        ``last_error``); a failing one is a problem, not an unhealthy database (the job
        retries by itself)."""
        self.background[name] = dict(status) if isinstance(status, Mapping) else asdict(status)
        if not self.background[name].get("healthy", True):
            self.problems.append(f"{name} is failing: {self.background[name].get('last_error')}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["migrated"] = self.migrated
        return out


def _checkpoint_head() -> int:
    return len(CHECKPOINT_MIGRATIONS) - 1


def probe(url: str) -> Op[HealthReport]:
    """Collect the report's database figures in one transaction."""
    started = time.perf_counter()
    rows = yield Query(PROBE_SQL)
    latency = (time.perf_counter() - started) * 1000
    info = rows[0]
    ext_rows = yield Query(EXTENSIONS_SQL, (list(EXTENSIONS),))
    revision = yield from current_revision()
    present = yield Query("SELECT to_regclass('checkpoint_migrations') IS NOT NULL AS p")
    cp = (yield Query(CHECKPOINT_VERSION_SQL)) if present[0]["p"] else [{"v": -1}]
    tenancy = yield from status_op()
    role = yield from role_op()
    report = HealthReport(
        ok=True,
        url=url,
        latency_ms=round(latency, 2),
        server_version=info["server_version"],
        database=info["database"],
        user=info["user"],
        schema=info["schema"],
        extensions={
            r["name"]: {"installed": r["installed_version"], "available": r["default_version"]}
            for r in ext_rows
        },
        revision=revision,
        checkpoint_version=cp[0]["v"],
        tenancy=tenancy,
        admin=bool(role["bypass"]),
    )
    if not report.migrated:
        report.problems.append(
            f"schema at revision {revision or 'none'}, head is {report.head}: "
            "run `langgraph-pgstore migrate`"
        )
    if report.checkpoint_version != _checkpoint_head():
        report.problems.append("checkpoint tables are not set up: run `langgraph-pgstore migrate`")
    if tenancy == "partial":
        report.problems.append(
            "row-level security is on for some tables only: run `langgraph-pgstore tenancy on`"
            " (or off)"
        )
    if "vector" not in report.extensions or not report.extensions["vector"]["installed"]:
        report.problems.append("pgvector is not installed: vector search is unavailable (degraded)")
    # Missing pgvector degrades features but the database still serves checkpoints.
    # ... but tables left outside row-level security while others are in it fail open.
    report.ok = (
        report.migrated and report.checkpoint_version == _checkpoint_head() and tenancy != "partial"
    )
    return report


def is_current(report: HealthReport) -> bool:
    """True when no DDL is needed (what ``connect(migrate=True)`` checks first)."""
    return report.migrated and report.checkpoint_version == _checkpoint_head()
