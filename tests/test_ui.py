"""The web UI: real recorded runs, uvicorn on loopback, driven in headless Debian Chromium.

Selenium talks to Debian's ``chromedriver`` (never a downloaded driver); the host's
authentication is a cookie here, so the browser can carry it. HTTP-level checks (status
codes, escaping, filters) use httpx against the same server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Cookie, FastAPI, HTTPException
from pgtest import migrated_database
from test_api import LiveServer, host_app, seed_rows
from test_telemetry_fakes import UsageChatModel

from langgraph_pgstore import Database
from langgraph_pgstore.api import create_app, create_router

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Fixed text with HTML and rich markup in it: every view must show it literally.
NASTY = "<b>bold?</b> [red]not markup[/red] <script>alert(1)</script>"


def record_runs(url: str) -> dict[str, uuid.UUID]:
    """carol: a run of ``support`` (agent -> LLM call, lookup -> tool); bob: a failed run."""
    from langchain_core.tools import tool
    from langgraph.graph import START, MessagesState, StateGraph

    llm = UsageChatModel()  # gpt-4o-mini, 100 in / 20 out: $0.000027 in genai-prices

    @tool
    def search_docs(topic: str) -> str:
        """Look a topic up."""
        return f"docs about {topic}"

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [llm.invoke(state["messages"])]}

    def lookup(state: MessagesState) -> dict[str, Any]:
        search_docs.invoke({"topic": "pools"})
        return {}

    def explode(state: MessagesState) -> dict[str, Any]:
        raise ValueError(NASTY)

    runs = {"carol": uuid.uuid4(), "bob": uuid.uuid4()}
    with Database.connect(url) as db:
        ok = StateGraph(MessagesState).add_node(agent).add_node(lookup)
        ok.add_edge(START, "agent").add_edge("agent", "lookup")
        bad = StateGraph(MessagesState).add_node(agent).add_node(explode)
        bad.add_edge(START, "agent").add_edge("agent", "explode")
        for user, builder in (("carol", ok), ("bob", bad)):
            graph = db.telemetry.instrument(  # full: error messages are shown
                builder.compile(checkpointer=db.checkpointer, name="support"), capture="full"
            )
            config = {
                "run_id": runs[user],
                "metadata": {"user_id": user},
                "configurable": {"thread_id": f"t-{user}"},
            }
            try:
                graph.invoke({"messages": [("user", f"hi from {user}")]}, config)
            except ValueError:
                assert user == "bob"
        assert db.telemetry.flush(10)
    return runs


async def cookie_user(pgstore_user: str | None = Cookie(default=None)) -> str:
    """The host's authentication, reduced to a cookie a browser sends."""
    if not pgstore_user:
        raise HTTPException(401, "who are you?")
    return pgstore_user


def ui_host(url: str) -> FastAPI:
    """A host application mounting our router with the UI under /pgstore."""
    return host_app(url, cookie_user, ui=True)


@pytest.fixture(scope="module")
def ui_db_url(server_url: str, template_url: str) -> Iterator[str]:
    with migrated_database(server_url, "t_ui") as url:
        yield url


@pytest.fixture(scope="module")
def runs(ui_db_url: str) -> dict[str, uuid.UUID]:
    return record_runs(ui_db_url)


@pytest.fixture(scope="module")
def host(ui_db_url: str, runs: dict[str, uuid.UUID]) -> Iterator[httpx.Client]:
    with LiveServer(ui_host(ui_db_url)) as http:
        yield http


def as_user(user: str) -> dict[str, str]:
    """The host's session cookie of ``user``, as a request header."""
    return {"Cookie": f"pgstore_user={user}"}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Debian Chromium through Debian's chromedriver, with a fresh profile."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed (.ci/run does it)")
        pytest.skip("apt install chromium chromium-driver to run the browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# -- in the browser -----------------------------------------------------------------------


def test_browser_runs_list_run_page_and_isolation(
    browser: Any, host: httpx.Client, runs: dict[str, uuid.UUID], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    origin = str(host.base_url).rstrip("/")
    base = f"{origin}/pgstore/ui"
    browser.get(f"{origin}/pgstore/health/liveness")  # a page of the origin, for the cookie
    browser.add_cookie({"name": "pgstore_user", "value": "carol", "path": "/"})

    # The runs list shows carol's recorded run, and only hers.
    browser.get(f"{base}/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr.run")
    assert [r.get_attribute("data-run") for r in rows] == [str(runs["carol"])]
    cells = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
    assert cells[1] == "success" and cells[2] == "support" and cells[3] == "carol"
    assert cells[-1] == "$0.000027"

    # Its page: the steps in order, the LLM call with its tokens and cost, the messages.
    rows[0].find_element(By.TAG_NAME, "a").click()
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("support")
    spans = browser.find_elements(By.CSS_SELECTOR, "#trace tr.span")
    order = [(s.get_attribute("data-kind"), s.find_element(By.CLASS_NAME, "name").text)
             for s in spans]  # fmt: skip
    assert order == [
        ("node", "agent"), ("llm", "gpt-4o-mini"), ("node", "lookup"), ("tool", "search_docs")
    ]  # fmt: skip
    llm_row = spans[1]
    assert llm_row.find_element(By.CLASS_NAME, "tokens").text == "100 / 20"
    assert llm_row.find_element(By.CLASS_NAME, "cost").text == "$0.000027"
    assert browser.find_element(By.ID, "run-cost").text == "$0.000027"
    bars = browser.find_elements(By.CSS_SELECTOR, "#timeline a.bar")
    assert sorted(b.get_attribute("data-span") for b in bars) == sorted(
        s.get_attribute("data-span") for s in spans
    )
    # The page's script links a bar and its trace row: hovering the bar highlights the row.
    from selenium.webdriver.common.action_chains import ActionChains

    llm_bar = next(
        b for b in bars if b.get_attribute("data-span") == llm_row.get_attribute("data-span")
    )
    ActionChains(browser).move_to_element(llm_bar).perform()
    assert "hot" in llm_row.get_attribute("class").split()
    messages = browser.find_element(By.ID, "messages").text
    assert "hi from carol" in messages and "hello there" in messages
    shot = tmp_path / "run.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    # Bob's run is not reachable: "not found", as if it did not exist.
    browser.get(f"{base}/runs/{runs['bob']}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"
    assert "bob" not in browser.find_element(By.TAG_NAME, "main").text

    # The dashboard shows carol's model and cost only.
    browser.find_element(By.LINK_TEXT, "Dashboard").click()
    assert browser.find_element(By.ID, "total-runs").text == "1"
    assert browser.find_element(By.ID, "total-cost").text == "$0.000027"
    models = browser.find_element(By.ID, "by-model").text
    assert "gpt-4o-mini" in models
    assert "bob" not in browser.find_element(By.ID, "by-user").text
    browser.save_screenshot(str(tmp_path / "dashboard.png"))


# -- over HTTP ----------------------------------------------------------------------------


def test_other_users_run_is_404_and_no_caller_is_401(
    host: httpx.Client, runs: dict[str, uuid.UUID]
) -> None:
    page = f"/pgstore/ui/runs/{runs['bob']}"
    assert host.get(page, headers=as_user("carol")).status_code == 404
    assert host.get(f"/pgstore/ui/runs/{uuid.uuid4()}", headers=as_user("carol")).status_code == 404
    assert host.get(page).status_code == 401  # the host's auth decides, as for the JSON routes
    mine = host.get(page, headers=as_user("bob"))
    assert mine.status_code == 200 and "support" in mine.text
    # Scoped lists: filtering by another user's status or name shows nothing of theirs.
    listed = host.get("/pgstore/ui/", params={"status": "error"}, headers=as_user("carol"))
    assert listed.status_code == 200 and str(runs["bob"]) not in listed.text
    # The user filter cannot widen a scoped caller's view.
    widened = host.get("/pgstore/ui/", params={"user": "bob"}, headers=as_user("carol")).text
    assert str(runs["bob"]) not in widened and str(runs["carol"]) in widened


def test_stored_text_is_escaped(host: httpx.Client, runs: dict[str, uuid.UUID]) -> None:
    page = host.get(f"/pgstore/ui/runs/{runs['bob']}", headers=as_user("bob"))
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert 'class="bar k-node failed"' in page.text  # the failed node is marked on the timeline
    listed = host.get("/pgstore/ui/", headers=as_user("bob"))
    assert "ValueError" in listed.text and "<b>bold?</b>" not in listed.text


def test_filters_and_bad_input(host: httpx.Client) -> None:
    bob = as_user("bob")
    assert "support" in host.get("/pgstore/ui/", params={"graph": "support"}, headers=bob).text
    none = host.get("/pgstore/ui/", params={"graph": "nope", "range": "24h"}, headers=bob)
    assert none.status_code == 200 and 'id="no-runs"' in none.text
    future = host.get("/pgstore/ui/", params={"since": "2999-01-01T00:00"}, headers=bob)
    assert 'id="no-runs"' in future.text
    bad = host.get("/pgstore/ui/", params={"since": "yesterday"}, headers=bob)
    assert bad.status_code == 422 and "since must be a date" in bad.text
    assert host.get("/pgstore/ui/", params={"range": "1y"}, headers=bob).status_code == 422
    assert host.get("/pgstore/ui/", params={"cursor": "zz"}, headers=bob).status_code == 422
    assert host.get("/pgstore/ui/runs/not-a-uuid", headers=bob).status_code == 422
    dash = host.get("/pgstore/ui/dashboard", params={"range": "7d"}, headers=bob)
    assert dash.status_code == 200 and "gpt-4o-mini" in dash.text


def test_static_assets_ship_in_the_package_and_nothing_is_fetched_elsewhere(
    host: httpx.Client,
) -> None:
    css = host.get("/pgstore/ui/static/ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert host.get("/pgstore/ui/static/ui.js").status_code == 200
    assert host.get("/pgstore/ui/static/..%2Fapi%2Fapp.py").status_code == 404
    assert host.get("/pgstore/ui/static/nope.css").status_code == 404
    page = host.get("/pgstore/ui/", headers=as_user("bob")).text
    assert "http://" not in page and "https://" not in page  # no CDN: works offline


def test_ui_is_opt_in_for_hosts_and_on_in_serve(ui_db_url: str) -> None:
    app = FastAPI()
    app.include_router(create_router(lambda: None))  # type: ignore[arg-type,return-value]
    assert not [r for r in app.routes if getattr(r, "path", "").startswith("/ui")]
    with LiveServer(create_app(ui_db_url)) as http:
        home = http.get("/", follow_redirects=False)
        assert home.status_code == 307 and home.headers["location"] == "/ui/"
        assert http.get("/ui/").status_code == 200
        assert "/ui/" not in str(http.get("/openapi.json").json()["paths"])
    with LiveServer(create_app(ui_db_url, ui=False)) as http:
        assert http.get("/ui/").status_code == 404


def test_unscoped_ui_filters_by_user(db_url: str) -> None:
    seeded = seed_rows(db_url)
    with LiveServer(create_app(db_url)) as http:
        page = http.get("/ui/", params={"user": "bob"}).text
        assert str(seeded["runs"]["b0"]) in page and str(seeded["runs"]["a1"]) not in page
        run = http.get(f"/ui/runs/{seeded['runs']['a1']}").text
        # Hand-seeded rows: two models, a tool step between two agent steps.
        assert "gpt-4o" in run and "$0.001030" in run
        assert "alice message 4" in run  # the thread's session messages beside the run
        dash = http.get("/ui/dashboard").text
        assert "alice" in dash and "bob" in dash and "$0.001030" in dash


# -- offline docs -------------------------------------------------------------------------


def test_docs_render_offline_in_chromium(ui_db_url: str, browser: Any) -> None:
    """``/docs`` is Swagger UI from files the package's dependencies ship: it renders in a
    browser with no network, and loads nothing from another origin."""
    with LiveServer(create_app(ui_db_url)) as client:
        page = client.get("/docs").text
        assert "cdn" not in page.lower() and "https://" not in page
        origin = str(client.base_url).rstrip("/")
        _check_docs(browser, origin)


def _check_docs(browser: Any, origin: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{origin}/docs")
    WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path"))
    )
    title = browser.find_element(By.CSS_SELECTOR, ".info .title").text
    assert title.startswith("langgraph-pgstore")
    paths = {e.text.replace("\u200b", "") for e in browser.find_elements(
        By.CSS_SELECTOR, ".opblock-summary-path")}  # fmt: skip
    assert {"/runs", "/sessions/{session_id}/messages", "/store/items/search"} <= paths
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert loaded and all(url.startswith(origin) for url in loaded), loaded
