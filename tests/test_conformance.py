"""langgraph-checkpoint-conformance against our async checkpointer on a fresh migrated database:
as the owner, and as an application role acting for a tenant (row-level security on)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import EXTENDED_CAPABILITIES
from langgraph.checkpoint.conformance.report import ProgressCallbacks

from langgraph_pgstore import AsyncDatabase
from langgraph_pgstore.checkpoint import AsyncPgCheckpointer

#: Extended capabilities we implement on top of AsyncPostgresSaver.
IMPLEMENTED = {"copy_thread", "delete_for_runs", "prune"}


@pytest.mark.parametrize("as_tenant", [False, True], ids=["owner", "tenant"])
async def test_conformance_base_and_extended(db_url: str, app_url: str, as_tenant: bool) -> None:
    url, tenant = (app_url, "conformance") if as_tenant else (db_url, None)
    async with AsyncDatabase.connect(url, max_size=4, tenant=tenant) as adb:

        @checkpointer_test(name="AsyncPgCheckpointer")
        async def ours() -> AsyncIterator[AsyncPgCheckpointer]:
            yield adb.checkpointer

        report = await validate(ours, progress=ProgressCallbacks.quiet())

    failures = {
        cap: result.failures for cap, result in report.results.items() if result.passed is False
    }
    assert report.passed_all_base(), failures
    assert {c.value for c in EXTENDED_CAPABILITIES} >= IMPLEMENTED
    for cap in IMPLEMENTED:
        result = report.results[cap]
        assert result.detected, f"{cap} not detected on AsyncPgCheckpointer"
        assert result.passed, f"{cap} failed: {result.failures}"
        assert result.tests_passed > 0
