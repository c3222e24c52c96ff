"""HTTP API (extra ``api``): a FastAPI router a host mounts, and the app ``serve`` runs.

    from langgraph_pgstore.api import create_router

    async def current_user(request: Request) -> str:   # the host's own authentication
        ...
    app.include_router(create_router(db, auth=current_user), prefix="/pgstore")

``auth`` is a FastAPI dependency returning the caller's user id; every list and read is then
scoped to that user and other users' rows answer 404. Without it the API is unscoped (for
an operator's private network), so mount it behind your own authentication.

The routes have no queries of their own: they run the library's operations
(``telemetry.queries``, ``conversations.ops``) and the memory store's methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app, create_router

__all__ = ["create_app", "create_router"]


def __getattr__(name: str) -> Any:
    # FastAPI is an optional extra: import it only when the router is asked for.
    if name in {"create_app", "create_router"}:
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
