"""``health()`` reports every background job the hub started, on both hubs."""

from __future__ import annotations

from langgraph_pgstore import AsyncDatabase, Database


def test_health_reports_telemetry_and_memory_jobs(db: Database) -> None:
    assert db.health().background == {}  # nothing started, nothing reported
    db.telemetry.status()
    store = db.memory(ttl={"default_ttl": 1.0, "sweep_interval_minutes": 1})
    store.put(("notes",), "k", {"text": "x"})
    store.get(("notes",), "k")  # an access note for the writer
    report = db.health()
    jobs = {"telemetry writer", "memory store 0: ttl sweeper", "memory store 0: access writer"}
    assert jobs <= set(report.background)
    assert all(report.background[j]["healthy"] for j in jobs), report.background
    assert report.ok and report.problems == []

    # A failing job is a problem of the report, not an unhealthy database (it retries).
    store._sweeper_liveness.failed(ConnectionError("server went away"))
    report = db.health()
    assert report.background["memory store 0: ttl sweeper"]["healthy"] is False
    assert any("ttl sweeper is failing" in p and "server went away" in p for p in report.problems)
    assert report.ok


async def test_async_health_reports_the_same_jobs(adb: AsyncDatabase) -> None:
    adb.telemetry.status()
    store = adb.memory()
    await store.aput(("notes",), "k", {"text": "x"})
    report = await adb.ahealth()
    assert report.background["telemetry writer"]["alive"] is True
    assert report.background["memory store 0: access writer"]["healthy"] is True
    assert report.ok
