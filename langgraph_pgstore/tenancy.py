"""Who owns a row, and which tenant a transaction acts for.

The model (README, "Tenants"):

- **Owner**: every row written on behalf of a user carries ``owner_id`` = that user's external
  id (what the application passes as ``config["metadata"]["user_id"]``); NULL means shared.
- **Tenant**: the user a transaction acts for, from trusted code only: ``connect(tenant=...)``
  (``PGSTORE_TENANT``) as the default, or a per-request scope a host enters after its own
  authentication (``with db.tenant("alice"):``). Never from graph metadata. It is sent as
  ``set_config('pgstore.tenant', ..., true)`` inside each transaction, so nothing lives in
  the session and pgbouncer's transaction pooling can't leak it to another client.
- **Tenancy switch**: row-level security on our tables and the checkpoint tables (on after
  ``migrate``). When on, policies compare ``owner_id`` with the tenant: a tenant sees and
  writes only its rows (and reads shared memories); a connection with no tenant only shared
  rows. Roles that bypass row-level security (superuser, ``BYPASSRLS``, the tables' owner)
  are the admin path: they see everything, so they may not act for a tenant.

The owner of a new row is the tenant when one is in effect, else the graph run's user, else an
owner named by the caller (``db.on_behalf_of``), else NULL. A run whose user differs from the
tenant is refused. With tenancy on and no tenant, a write owned by a user is refused by the
database too (fail closed): the run must be scoped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from weakref import WeakKeyDictionary

from .errors import InvalidInput, PermissionDenied

if TYPE_CHECKING:  # ``_ops`` imports this module: its runners apply the tenant
    from ._ops import Op

__all__ = [
    "OWNED_TABLES",
    "SET_OWNER_SQL",
    "SET_TENANT_SQL",
    "Binding",
    "Scope",
    "TenancyState",
    "bind",
    "binding",
    "on_behalf_of_scope",
    "recorded_owner",
    "require_admin",
    "resolve_owner",
    "role_op",
    "run_user",
    "status_op",
    "switch_op",
    "tenant_for",
    "tenant_scope",
    "user_of",
    "validate_id",
]

log = logging.getLogger(__name__)

#: One statement per transaction, and only when a tenant (or an owner) is in effect.
SET_TENANT_SQL = "SELECT set_config('pgstore.tenant', %s, true)"
SET_OWNER_SQL = "SELECT set_config('pgstore.owner', %s, true)"

#: Tables whose rows carry ``owner_id`` and row-level security (memory_vectors only with
#: pgvector). The three checkpoint tables are langgraph's, with our column added.
OWNED_TABLES = (
    "users",
    "sessions",
    "messages",
    "chain_analysis_results",
    "runs",
    "steps",
    "llm_calls",
    "memory_items",
    "memory_vectors",
    "checkpoints",
    "checkpoint_blobs",
    "checkpoint_writes",
)

MAX_ID_CHARS = 256

TenancyState = Literal["on", "off", "partial", "absent"]


def validate_id(value: Any, what: str = "user id") -> str:
    """An external user id as stored: a non-empty string without control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, not {type(value).__name__}")
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"{what} must be 1-{MAX_ID_CHARS} characters, got {len(value)}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"{what} contains a control character: {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid UTF-8: {value!r}") from exc
    return value


def user_of(config: Mapping[str, Any] | None) -> str | None:
    """The user a graph run acts for: ``metadata["user_id"]`` (or ``configurable["user_id"]``).

    LangGraph passes ``metadata`` to checkpoints, callbacks and ``get_config()``; the value is
    the application's claim, used for ownership, never as a tenant.
    """
    if not config:
        return None
    meta = config.get("metadata") or {}
    user = meta.get("user_id")
    if user is None:
        user = (config.get("configurable") or {}).get("user_id")
    if user is None or user == "":
        return None
    return validate_id(str(user), "user_id")


def run_user() -> str | None:
    """The user of the graph run this code executes in (None outside a run)."""
    from langgraph.config import get_config

    try:
        config = get_config()
    except RuntimeError:  # not inside a runnable
        return None
    return user_of(config)


# ------------------------------------------------------------------ scopes and bindings

_tenant: ContextVar[str | None] = ContextVar("pgstore_tenant", default=None)
_on_behalf_of: ContextVar[str | None] = ContextVar("pgstore_on_behalf_of", default=None)


@dataclass(frozen=True, slots=True)
class Binding:
    """What a ``Database`` knows about the pool it opened."""

    default: str | None
    """The tenant of ``connect(tenant=...)``, applied when no scope is entered."""
    role: str
    bypass: bool
    """The role bypasses row-level security (superuser, BYPASSRLS, owner of the tables)."""


_bindings: WeakKeyDictionary[Any, Binding] = WeakKeyDictionary()


def bind(conn: Any, binding: Binding) -> None:
    _bindings[conn] = binding


def binding(conn: Any) -> Binding | None:
    try:
        return _bindings.get(conn)
    except TypeError:  # not weak-referenceable: never bound
        return None


def _refuse_bypass(tenant: str, role: str) -> PermissionDenied:
    return PermissionDenied(
        f"role {role!r} bypasses row-level security (superuser, BYPASSRLS or owner of the "
        f"tables), so a connection acting for tenant {tenant!r} would see every tenant's "
        "rows. Connect as the application role (DML grants only) to act for tenants; use "
        "this role unscoped, for maintenance."
    )


def tenant_for(conn: Any) -> str | None:
    """The tenant a transaction on ``conn`` acts for: the entered scope, else the default."""
    tenant = _tenant.get()
    bound = binding(conn)
    if tenant is None and bound is not None:
        tenant = bound.default
    if tenant is not None and bound is not None and bound.bypass:
        raise _refuse_bypass(tenant, bound.role)
    return tenant


def resolve_owner(conn: Any, user: str | None) -> tuple[str | None, str | None]:
    """``(tenant, owner)`` of a write on ``conn`` on behalf of ``user`` (a run's user id or an
    owner the caller names). A user other than the tenant is refused."""
    tenant = tenant_for(conn)
    if tenant is not None:
        if user is not None and user != tenant:
            raise PermissionDenied(
                f"acting for tenant {tenant!r}, refusing to write on behalf of user {user!r}"
            )
        return tenant, tenant
    return None, user if user is not None else _on_behalf_of.get()


def recorded_owner(conn: Any, metadata: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """``(tenant, owner)`` of a run's records that must never fail the run (telemetry): the
    tenant owns them whatever the run claims; a refused scope or a malformed id only costs the
    attribution (the checkpointer raises for those)."""
    try:
        tenant = tenant_for(conn)
    except PermissionDenied:
        tenant = None
    if tenant is not None:
        return tenant, tenant
    try:
        user = user_of({"metadata": metadata or {}})
    except InvalidInput:
        user = None
    return None, user if user is not None else _on_behalf_of.get()


class Scope:
    """Sets a context variable for a ``with`` / ``async with`` block (and resets it)."""

    def __init__(self, var: ContextVar[str | None], value: str | None) -> None:
        self._var, self._value = var, value
        self._tokens: list[Token[str | None]] = []

    def __enter__(self) -> str | None:
        self._tokens.append(self._var.set(self._value))
        return self._value

    def __exit__(self, *exc: object) -> None:
        self._var.reset(self._tokens.pop())

    async def __aenter__(self) -> str | None:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__()


def tenant_scope(tenant: str, bound: Binding | None = None) -> Scope:
    """Act for ``tenant`` inside the block (refused at once for a role that bypasses RLS)."""
    tenant = validate_id(tenant, "tenant")
    if bound is not None and bound.bypass:
        raise _refuse_bypass(tenant, bound.role)
    return Scope(_tenant, tenant)


def on_behalf_of_scope(user: str) -> Scope:
    """Own rows written in the block by ``user`` (attribution only: no tenant, no RLS scope)."""
    return Scope(_on_behalf_of, validate_id(user, "user id"))


# ------------------------------------------------------------------ the switch (sans-IO)

#: ``admin``: the role sees every row whatever the policies say.
ROLE_SQL = """
SELECT current_user AS role,
       r.rolsuper OR r.rolbypassrls
         OR coalesce(pg_has_role(c.relowner, 'USAGE'), false) AS bypass,
       c.relrowsecurity AS tenancy,
       nullif(current_setting('pgstore.tenant', true), '') AS tenant
FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass('users')
WHERE r.rolname = current_user
"""
STATUS_SQL = """
SELECT t AS name, c.relrowsecurity AS on
FROM unnest(%s::text[]) AS t LEFT JOIN pg_class c ON c.oid = to_regclass(t)
"""


def role_op() -> Op[dict[str, Any]]:
    """``{role, bypass, tenancy, tenant}`` of the current transaction."""
    from ._ops import Query

    rows = yield Query(ROLE_SQL)
    return dict(rows[0])


def status_op() -> Op[TenancyState]:
    """``on``/``off`` when every owned table agrees, ``partial`` otherwise, ``absent`` before
    migrations."""
    from ._ops import Query

    rows = yield Query(STATUS_SQL, (list(OWNED_TABLES),))
    states = {r["on"] for r in rows if r["on"] is not None}
    if not states:
        return "absent"
    if len(states) > 1:
        return "partial"
    return "on" if states.pop() else "off"


def switch_op(on: bool) -> Op[TenancyState]:
    """Enable or disable row-level security on every owned table (the tables' owner only)."""
    from psycopg import sql

    from ._ops import Query

    rows = yield Query(STATUS_SQL, (list(OWNED_TABLES),))
    action = sql.SQL("ENABLE" if on else "DISABLE")
    for row in rows:
        if row["on"] is not None:
            yield Query(
                sql.SQL("ALTER TABLE {} {} ROW LEVEL SECURITY").format(
                    sql.Identifier(row["name"]), action
                )
            )
    return (yield from status_op())


def require_admin(what: str) -> Op[dict[str, Any]]:
    """Refuse maintenance (``what``) unless it sees every row: the role bypasses row-level
    security, or tenancy is off; never inside a tenant scope."""
    info = yield from role_op()
    if info["tenant"] is not None:
        raise PermissionDenied(
            f"{what} is a maintenance operation: it can't run while acting for tenant "
            f"{info['tenant']!r}"
        )
    if info["tenancy"] and not info["bypass"]:
        raise PermissionDenied(
            f"{what} is a maintenance operation: tenancy is on and role {info['role']!r} is "
            "subject to row-level security, so it would see only some rows. Run it as the "
            "tables' owner or a role with BYPASSRLS (the admin path)."
        )
    log.info("%s: admin path as role %s", what, info["role"])
    return info
