"""langgraph-checkpoint-conformance against both our checkpointers on a fresh migrated
database: as the owner, and as an application role acting for a tenant (row-level security
on). The sync checkpointer runs behind :class:`savers.Threaded` (the suite awaits)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import EXTENDED_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks
from savers import Threaded

from langgraph_pgstore import AsyncDatabase, Database

#: Extended capabilities we implement on top of PostgresSaver / AsyncPostgresSaver.
IMPLEMENTED = {"copy_thread", "delete_for_runs", "prune"}


def _check(report: Any, name: str) -> None:
    failures = {
        cap: result.failures for cap, result in report.results.items() if result.passed is False
    }
    assert report.passed_all_base(), failures
    assert {c.value for c in EXTENDED_CAPABILITIES} >= IMPLEMENTED
    for cap in IMPLEMENTED:
        result = report.results[cap]
        assert result.detected, f"{cap} not detected on {name}"
        assert result.passed, f"{cap} failed: {result.failures}"
        assert result.tests_passed > 0


@pytest.mark.parametrize("as_tenant", [False, True], ids=["owner", "tenant"])
async def test_conformance_async(db_url: str, app_url: str, as_tenant: bool) -> None:
    url, tenant = (app_url, "conformance") if as_tenant else (db_url, None)
    async with AsyncDatabase.connect(url, max_size=4, tenant=tenant) as adb:

        @checkpointer_test(name="AsyncPgCheckpointer")
        async def ours() -> AsyncIterator[Any]:
            yield adb.checkpointer

        report = await validate(ours, progress=ProgressCallbacks.quiet())
    _check(report, "AsyncPgCheckpointer")


@pytest.mark.parametrize("as_tenant", [False, True], ids=["owner", "tenant"])
async def test_conformance_sync(db_url: str, app_url: str, as_tenant: bool) -> None:
    url, tenant = (app_url, "conformance") if as_tenant else (db_url, None)
    with Database.connect(url, max_size=4, tenant=tenant) as db:

        @checkpointer_test(name="PgCheckpointer")
        async def ours() -> AsyncIterator[Any]:
            yield Threaded(db.checkpointer)

        report = await validate(ours, progress=ProgressCallbacks.quiet())
    _check(report, "PgCheckpointer")
