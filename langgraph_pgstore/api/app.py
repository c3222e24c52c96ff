"""The FastAPI router and app (see the package docstring).

Every route is a thin adapter over the library: it runs the same sans-IO operation the
Python API runs (``telemetry.queries``, ``conversations.ops``) or calls the memory store's
public methods, and declares the library's record types as its response model, so the
OpenAPI schema shows real fields and HTTP, Python and the CLI's ``--json`` agree.
"""

import functools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

try:
    from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Response
    from fastapi.responses import JSONResponse, RedirectResponse
    from fastapi_offline import FastAPIOffline
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ..errors import ConfigurationError

    raise ConfigurationError(
        "the HTTP API needs FastAPI: pip install 'langgraph-pgstore[api]'"
    ) from exc

import psycopg
from langgraph.store.base import NOT_PROVIDED, BaseStore
from pydantic import TypeAdapter

from .. import tenancy
from .._ops import Op, arun
from ..conversations import ops as conv
from ..conversations.models import Message, Session, SessionStats, StoredChainAnalysis
from ..database import AsyncDatabase
from ..errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    MigrationError,
    NotFound,
    PermissionDenied,
    PgStoreError,
)
from ..paging import MAX_LIMIT, Page
from ..telemetry import queries as tq
from ..telemetry.records import GroupStats, LlmCall, Run, RunDetail, RunStats, Step
from .models import (
    Health,
    Liveness,
    NamespacesPage,
    Problem,
    Readiness,
    StoreDelete,
    StoreItem,
    StoreListNamespaces,
    StorePut,
    StoreSearch,
    StoreSearchPage,
)

__all__ = ["create_app", "create_router"]

T = TypeVar("T")
HEALTH: TypeAdapter[Any] = TypeAdapter(Health)

#: Seconds a readiness probe waits for a pooled connection before answering 503.
READINESS_TIMEOUT = 5.0

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size.")]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; omit for the first.")
]
Since = Annotated[
    datetime | None, Query(description="Runs started at or after (ISO 8601; no zone: UTC).")
]
Until = Annotated[datetime | None, Query(description="Runs started before (ISO 8601).")]
MetadataFilter = Annotated[
    str | None, Query(description='Runs whose metadata contains this JSON object: `{"k": "v"}`.')
]

#: Error bodies every data route may answer with (documented in the OpenAPI schema).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (401, 403, 404, 409, 422, 503)
}


async def _anonymous() -> str | None:
    """No authentication hook: results are not scoped (an admin surface)."""
    return None


def _authenticated(
    auth: Callable[..., Any], get_db: Callable[[], AsyncDatabase]
) -> Callable[..., AsyncIterator[str]]:
    """The host's ``auth`` dependency, failing closed (no caller: HTTP 401, never "all"), and
    the request acting for the caller as its tenant, so row-level security keeps every query
    of the request to the caller's rows (unless the role bypasses it: then the queries' owner
    filters alone do)."""

    async def caller(user: Annotated[Any, Depends(auth)]) -> AsyncIterator[str]:
        if user is None or user == "":
            raise HTTPException(401, "not authenticated")
        try:
            external_id = tenancy.validate_id(str(user), "caller id")
        except InvalidInput as exc:
            raise HTTPException(401, "not authenticated") from exc
        database = get_db()
        if database.bypasses_rls:
            yield external_id
            return
        async with database.tenant(external_id):
            yield external_id

    return caller


#: HTTP status of each of our errors (the most specific class wins; README's Errors table).
HTTP_STATUS: dict[type[PgStoreError], int] = {
    NotFound: 404,
    InvalidInput: 422,
    PermissionDenied: 403,
    Conflict: 409,
    DatabaseUnavailable: 503,
    MigrationError: 503,  # an operator's fix, not the caller's: "try later"
}


def http_error(exc: PgStoreError) -> HTTPException:
    """The HTTPException for one of our errors (500 for any other)."""
    status = next((HTTP_STATUS[c] for c in type(exc).__mro__ if c in HTTP_STATUS), 500)
    detail = "database unavailable" if isinstance(exc, DatabaseUnavailable) else str(exc)
    return HTTPException(status, detail)


def _utc(value: datetime | None) -> datetime | None:
    """A query's time bound: without a zone it is UTC (never the server's zone)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise HTTPException(422, f"metadata must be a JSON object: {exc}") from exc
    if not isinstance(parsed, dict):
        raise HTTPException(422, "metadata must be a JSON object")
    return parsed


def create_router(
    db: AsyncDatabase | Callable[[], AsyncDatabase],
    *,
    auth: Callable[..., Any] | None = None,
    ui: bool = False,
    store: BaseStore | Callable[[], BaseStore] | None = None,
) -> APIRouter:
    """Routes for ``/health*``, ``/runs*``, ``/stats``, ``/sessions*`` and ``/store/*`` over
    ``db``.

    ``db`` may be a callable returning the database, for hosts that open it in their
    lifespan (after the router is built). ``auth`` is a dependency returning the caller's
    user id (an external id), or None / raising ``HTTPException(401)`` for no caller, which
    answers 401. Each request then reads only the caller's rows: its queries keep to
    ``owner_id = caller`` and it acts for that tenant (row-level security, unless the role
    bypasses it). Without ``auth`` the router reads every user's rows: an admin surface, to
    serve only behind your own access control. Health routes are never scoped.

    ``store`` is the memory store of the ``/store`` routes (LangGraph's server API), or a
    callable returning it; default ``db.store``. With ``auth`` they need row-level security
    in force (tenancy on, a role that does not bypass it): memories carry no owner filter of
    their own, so they answer 403 otherwise. ``ui=True`` adds the web UI under ``/ui/`` (see
    ``langgraph_pgstore.ui``), scoped by the same ``auth``.
    """
    get_db: Callable[[], AsyncDatabase] = db if callable(db) else (lambda: db)
    if store is None:
        get_store: Callable[[], BaseStore] = lambda: get_db().store  # noqa: E731
    else:
        get_store = store if callable(store) else (lambda: store)
    router = APIRouter()
    runs_route = functools.partial(router.get, tags=["runs"], responses=ERRORS)
    sessions_route = functools.partial(router.get, tags=["sessions"], responses=ERRORS)
    caller = Depends(_authenticated(auth, get_db) if auth else _anonymous)
    Caller = Annotated[str | None, caller]

    async def call(op: Op[T]) -> T:
        try:
            return await arun(get_db().pool, op)
        except PgStoreError as exc:
            raise http_error(exc) from exc

    # -- health (never scoped: probes carry no credentials) --------------------------------

    def probe(path: str, summary: str, body: Any) -> Callable[[T], T]:
        """A health route answering ``body`` with 200, or with 503 when not well."""
        return router.get(  # type: ignore[return-value]
            path, tags=["health"], summary=summary, response_model=body,
            responses={503: {"model": body}},
        )  # fmt: skip

    @probe("/health", "Full health report (503 when unhealthy)", Health)
    async def health() -> JSONResponse:
        report = await get_db().ahealth()
        status = "healthy" if report.ok else "unhealthy"
        body = HEALTH.dump_python({"status": status, **report.to_dict()}, mode="json")
        return JSONResponse(body, status_code=200 if report.ok else 503)

    @router.get("/health/liveness", tags=["health"], summary="Process is up (no database)")
    async def liveness() -> Liveness:
        return Liveness(status="alive")

    @probe("/health/readiness", "Database reachable, pool figures", Readiness)
    async def readiness() -> JSONResponse:
        database = get_db()
        body = Readiness(status="ready", pool={})
        try:
            async with database.pool.connection(timeout=READINESS_TIMEOUT) as conn:
                await conn.execute("SELECT 1")
        except psycopg.Error as exc:  # PoolTimeout and DatabaseUnavailable included
            body = Readiness(status="not_ready", error=type(exc).__name__, pool={})
        body.pool = database._pool_stats(database.pool)
        code = 200 if body.status == "ready" else 503
        return JSONResponse(body.model_dump(mode="json"), status_code=code)

    # -- runs (telemetry.queries) ---------------------------------------------------------

    async def run_filters(
        user: Caller,
        status: str | None = None,
        graph_name: str | None = None,
        thread_id: str | None = None,
        user_id: str | None = None,
        trace_id: str | None = None,
        idempotency_key: str | None = None,
        since: Since = None,
        until: Until = None,
        metadata: MetadataFilter = None,
    ) -> tq.RunFilters:
        """The filters of ``/runs`` and ``/stats`` (``telemetry.RunFilters``), scoped to the
        caller."""
        return tq.RunFilters(
            owner_id=user, user_id=user_id, thread_id=thread_id, graph_name=graph_name,
            status=status, trace_id=trace_id, idempotency_key=idempotency_key,
            since=_utc(since), until=_utc(until), metadata=_metadata(metadata),
        )  # fmt: skip

    Filters = Annotated[tq.RunFilters, Depends(run_filters)]

    @runs_route("/runs", summary="Runs, newest first")
    async def list_runs(filters: Filters, limit: Limit = 50, cursor: Cursor = None) -> Page[Run]:
        return await call(tq.list_runs(limit=limit, cursor=cursor, **filters))

    @runs_route("/runs/find", summary="The newest run with an idempotency key or a trace id")
    async def find_run(
        user: Caller, idempotency_key: str | None = None, trace_id: str | None = None
    ) -> Run:
        op = tq.find_run(idempotency_key=idempotency_key, trace_id=trace_id, owner_id=user)
        return await call(op)

    @runs_route("/runs/{run_id}", summary="A run, its steps and LLM calls")
    async def get_run(run_id: UUID, user: Caller) -> RunDetail:
        return await call(tq.get_run(run_id, owner_id=user))

    @runs_route("/runs/{run_id}/steps", summary="A run's step timeline")
    async def run_steps(run_id: UUID, user: Caller) -> list[Step]:
        return (await call(tq.get_run(run_id, owner_id=user)))["steps"]

    @runs_route("/runs/{run_id}/llm_calls", summary="A run's LLM calls")
    async def run_llm_calls(run_id: UUID, user: Caller) -> list[LlmCall]:
        return (await call(tq.get_run(run_id, owner_id=user)))["llm_calls"]

    @runs_route("/runs/{run_id}/stats", summary="Tokens, cost, latency of a run")
    async def run_stats(run_id: UUID, user: Caller) -> RunStats:
        return await call(tq.run_stats(run_id, owner_id=user))

    @runs_route("/stats", summary="Totals grouped by session, user, graph, model or day")
    async def grouped_stats(
        filters: Filters, by: tq.GroupBy = "session", run_id: UUID | None = None
    ) -> list[GroupStats]:
        return await call(tq.stats(by, **filters, run_id=run_id))

    # -- sessions and messages (conversations.ops) ----------------------------------------

    @sessions_route("/sessions", summary="Sessions, most recently updated first")
    async def list_sessions(
        user: Caller,
        limit: Limit = 50,
        cursor: Cursor = None,
        status: conv.SessionStatus | None = None,
        owner: Annotated[
            str | None, Query(alias="user", description="Only this user's (unscoped routers).")
        ] = None,
    ) -> Page[Session]:
        who = user if user is not None else owner
        return await call(conv.list_sessions(who, status=status, limit=limit, cursor=cursor))

    @sessions_route("/sessions/{session_id}", summary="One session")
    async def get_session(session_id: UUID, user: Caller) -> Session:
        return await call(conv.get_session(session_id, owner_id=user))

    @sessions_route(
        "/sessions/{session_id}/messages",
        summary="A session's messages in order (removed ones hidden)",
    )
    async def session_messages(
        session_id: UUID,
        user: Caller,
        limit: Limit = 100,
        cursor: Cursor = None,
        last: Annotated[bool, Query(description="Newest first page, paging backwards.")] = False,
        role: str | None = None,
        include_removed: bool = False,
    ) -> Page[Message]:
        op = conv.list_messages(
            session_id, limit=limit, cursor=cursor, last=last, role=role,
            include_removed=include_removed, owner_id=user,
        )  # fmt: skip
        return await call(op)

    @sessions_route(
        "/sessions/{session_id}/stats", summary="Messages per role, tokens, first and last message"
    )
    async def session_stats(session_id: UUID, user: Caller) -> SessionStats:
        return await call(conv.session_stats(session_id, owner_id=user))

    @sessions_route(
        "/sessions/{session_id}/analysis", summary="The session's chain analysis (null when none)"
    )
    async def session_analysis(session_id: UUID, user: Caller) -> StoredChainAnalysis | None:
        return await call(conv.get_analysis(session_id, owner_id=user))

    # -- store (LangGraph's server API over the memory store) -----------------------------

    async def store_user(user: Caller) -> str | None:
        """With ``auth``, memories are scoped by row-level security alone: refuse when it
        is not in force, rather than show every tenant's memories."""
        if user is not None:
            info = await call(tenancy.role_op())
            if info["bypass"] or not info["tenancy"]:
                raise HTTPException(
                    403,
                    "the store routes need row-level security in force for the caller "
                    "(tenancy on, and a role that does not bypass it)",
                )
        return user

    StoreCaller = Annotated[str | None, Depends(store_user)]

    async def store_call(coro: Any) -> Any:
        try:
            return await coro
        except PgStoreError as exc:
            raise http_error(exc) from exc
        except ValueError as exc:  # LangGraph's own checks (namespace labels, ...)
            raise HTTPException(422, str(exc)) from exc

    @router.put(
        "/store/items", tags=["store"], summary="Put an item", status_code=204, responses=ERRORS
    )
    async def store_put(body: StorePut, user: StoreCaller) -> Response:
        ttl = body.ttl if "ttl" in body.model_fields_set else NOT_PROVIDED  # absent: default
        await store_call(
            get_store().aput(tuple(body.namespace), body.key, body.value, body.index, ttl=ttl)
        )
        return Response(status_code=204)

    @router.get("/store/items", tags=["store"], summary="Get an item", responses=ERRORS)
    async def store_get(
        user: StoreCaller,
        key: str,
        namespace: Annotated[str, Query(description="Labels joined by dots.")] = "",
        refresh_ttl: bool | None = None,
    ) -> StoreItem:
        labels = tuple(namespace.split(".")) if namespace else ()
        item = await store_call(get_store().aget(labels, key, refresh_ttl=refresh_ttl))
        if item is None:
            raise HTTPException(404, f"no item {key!r} in {namespace!r}")
        return StoreItem.model_validate(item.dict())

    @router.delete(
        "/store/items",
        tags=["store"],
        summary="Delete an item",
        status_code=204,
        responses=ERRORS,
    )
    async def store_delete(body: StoreDelete, user: StoreCaller) -> Response:
        await store_call(get_store().adelete(tuple(body.namespace), body.key))
        return Response(status_code=204)

    @router.post(
        "/store/items/search",
        tags=["store"],
        summary="Search items under a namespace prefix",
        responses=ERRORS,
    )
    async def store_search(body: StoreSearch, user: StoreCaller) -> StoreSearchPage:
        found = await store_call(
            get_store().asearch(
                tuple(body.namespace_prefix), query=body.query, filter=body.filter,
                limit=body.limit, offset=body.offset, refresh_ttl=body.refresh_ttl,
            )
        )  # fmt: skip
        return StoreSearchPage.model_validate(
            {"items": [i.dict() for i in found], "next_cursor": getattr(found, "next_cursor", None)}
        )

    @router.post("/store/namespaces", tags=["store"], summary="List namespaces", responses=ERRORS)
    async def store_namespaces(body: StoreListNamespaces, user: StoreCaller) -> NamespacesPage:
        found = await store_call(
            get_store().alist_namespaces(
                prefix=tuple(body.prefix) if body.prefix else None,
                suffix=tuple(body.suffix) if body.suffix else None,
                max_depth=body.max_depth, limit=body.limit, offset=body.offset,
            )
        )  # fmt: skip
        return NamespacesPage(
            namespaces=[list(ns) for ns in found], next_cursor=getattr(found, "next_cursor", None)
        )

    if ui:
        from ..ui.routes import ui_router

        router.include_router(ui_router(call, caller))
    return router


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langgraph-pgstore")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(
    url: str | None = None, *, auth: Callable[..., Any] | None = None, ui: bool = True
) -> FastAPI:
    """The app ``langgraph-pgstore serve`` runs: the router over a database opened at startup,
    with the web UI at ``/ui/`` (``/`` redirects there) unless ``ui=False``, and the API's
    documentation at ``/docs`` and ``/redoc`` from assets shipped in packages (no CDN: it
    renders offline).

    The schema is not migrated here (run ``langgraph-pgstore migrate``); ``/health`` reports
    a schema that is behind.
    """
    state: dict[str, AsyncDatabase] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with AsyncDatabase.connect(url, migrate=False) as database:
            state["db"] = database
            yield
            state.clear()

    def get_db() -> AsyncDatabase:
        return state["db"]

    app = FastAPIOffline(title="langgraph-pgstore", version=_version(), lifespan=lifespan)
    app.include_router(create_router(get_db, auth=auth, ui=ui))
    if ui:

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse(app.url_path_for("pgstore_ui_runs"))

    return app
