"""The FastAPI router and app (see the package docstring)."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar, cast
from uuid import UUID

try:
    from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
    from fastapi.responses import JSONResponse, RedirectResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from ..errors import ConfigurationError

    raise ConfigurationError(
        "the HTTP API needs FastAPI: pip install 'langgraph-pgstore[api]'"
    ) from exc

import psycopg

from .._ops import Op, arun
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
from ..tenancy import validate_id
from . import queries

__all__ = ["create_app", "create_router"]

T = TypeVar("T")

#: Seconds a readiness probe waits for a pooled connection before answering 503.
READINESS_TIMEOUT = 5.0

Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT, description="Page size.")]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; omit for the first.")
]


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
            external_id = validate_id(str(user), "caller id")
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


def create_router(
    db: AsyncDatabase | Callable[[], AsyncDatabase],
    *,
    auth: Callable[..., Any] | None = None,
    ui: bool = False,
) -> APIRouter:
    """Routes for ``/health*``, ``/runs*`` and ``/sessions*`` over ``db``.

    ``db`` may be a callable returning the database, for hosts that open it in their
    lifespan (after the router is built). ``auth`` is a dependency returning the caller's
    user id (an external id), or None / raising ``HTTPException(401)`` for no caller, which
    answers 401. Each request then reads only the caller's rows: its queries keep to
    ``owner_id = caller`` and it acts for that tenant (row-level security, unless the role
    bypasses it). Without ``auth`` the router reads every user's rows: an admin surface, to
    serve only behind your own access control. Health routes are never scoped.
    ``ui=True`` adds the web UI under ``/ui/`` (see ``langgraph_pgstore.ui``), scoped by the
    same ``auth``.
    """
    get_db: Callable[[], AsyncDatabase] = db if callable(db) else (lambda: db)
    router = APIRouter()
    caller = Depends(_authenticated(auth, get_db) if auth else _anonymous)
    Caller = Annotated[str | None, caller]

    async def call(op: Op[T]) -> T:
        try:
            return await arun(get_db().pool, op)
        except PgStoreError as exc:
            raise http_error(exc) from exc

    @router.get("/health", tags=["health"], summary="Full health report (503 when unhealthy)")
    async def health() -> JSONResponse:
        report = await get_db().ahealth()
        body = {"status": "healthy" if report.ok else "unhealthy", **report.to_dict()}
        return JSONResponse(body, status_code=200 if report.ok else 503)

    @router.get("/health/liveness", tags=["health"], summary="Process is up (no database)")
    async def liveness() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/health/readiness", tags=["health"], summary="Database reachable, pool figures")
    async def readiness() -> JSONResponse:
        database = get_db()
        body: dict[str, Any] = {"status": "ready"}
        code = 200
        try:
            async with database.pool.connection(timeout=READINESS_TIMEOUT) as conn:
                await conn.execute("SELECT 1")
        except psycopg.Error as exc:  # PoolTimeout and DatabaseUnavailable included
            body = {"status": "not_ready", "error": type(exc).__name__}
            code = 503
        body["pool"] = database._pool_stats(database.pool)
        return JSONResponse(body, status_code=code)

    @router.get("/runs", tags=["runs"], summary="Runs, newest first")
    async def list_runs(
        user: Caller,
        limit: Limit = 50,
        cursor: Cursor = None,
        status: str | None = None,
        graph_name: str | None = None,
        thread_id: str | None = None,
    ) -> dict[str, Any]:
        return await call(
            queries.list_runs(
                limit=limit,
                cursor=cursor,
                status=status,
                graph_name=graph_name,
                thread_id=thread_id,
                user_id=user,
            )
        )

    @router.get("/runs/{run_id}", tags=["runs"], summary="One run")
    async def get_run(run_id: UUID, user: Caller) -> dict[str, Any]:
        detail = await call(queries.get_run(run_id, user_id=user))
        return cast(dict[str, Any], detail["run"])

    @router.get("/runs/{run_id}/steps", tags=["runs"], summary="A run's step timeline")
    async def run_steps(run_id: UUID, user: Caller) -> list[dict[str, Any]]:
        detail = await call(queries.get_run(run_id, user_id=user))
        return cast(list[dict[str, Any]], detail["steps"])

    @router.get("/runs/{run_id}/llm_calls", tags=["runs"], summary="A run's LLM calls")
    async def run_llm_calls(run_id: UUID, user: Caller) -> list[dict[str, Any]]:
        detail = await call(queries.get_run(run_id, user_id=user))
        return cast(list[dict[str, Any]], detail["llm_calls"])

    @router.get("/runs/{run_id}/stats", tags=["runs"], summary="Tokens, cost, latency of a run")
    async def run_stats(run_id: UUID, user: Caller) -> dict[str, Any]:
        return await call(queries.run_stats(run_id, user_id=user))

    @router.get("/stats", tags=["runs"], summary="Totals grouped by session/user/graph/model/day")
    async def grouped_stats(
        user: Caller,
        by: Literal["session", "user", "graph", "model", "day"] = "session",
        thread_id: str | None = None,
        graph_name: str | None = None,
    ) -> list[dict[str, Any]]:
        return await call(
            queries.grouped_stats(by, user_id=user, thread_id=thread_id, graph_name=graph_name)
        )

    @router.get("/sessions", tags=["sessions"], summary="Sessions, most recently updated first")
    async def list_sessions(
        user: Caller, limit: Limit = 50, cursor: Cursor = None, status: str | None = None
    ) -> dict[str, Any]:
        return await call(
            queries.list_sessions(limit=limit, cursor=cursor, status=status, user_id=user)
        )

    @router.get("/sessions/{session_id}", tags=["sessions"], summary="One session")
    async def get_session(session_id: UUID, user: Caller) -> dict[str, Any]:
        return await call(queries.get_session(session_id, user_id=user))

    @router.get(
        "/sessions/{session_id}/messages", tags=["sessions"], summary="A session's messages"
    )
    async def session_messages(
        session_id: UUID, user: Caller, limit: Limit = 100, cursor: Cursor = None
    ) -> dict[str, Any]:
        return await call(
            queries.list_messages(session_id, limit=limit, cursor=cursor, user_id=user)
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
    with the web UI at ``/ui/`` (``/`` redirects there) unless ``ui=False``.

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

    app = FastAPI(title="langgraph-pgstore", version=_version(), lifespan=lifespan)
    app.include_router(create_router(get_db, auth=auth, ui=ui))
    if ui:

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse(app.url_path_for("pgstore_ui_runs"))

    return app
