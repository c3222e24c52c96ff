"""Sans-IO operations of the conversations API: each written once, run sync or async.

This module owns every read of ``users``, ``sessions``, ``messages`` and
``chain_analysis_results`` (the Python API, the CLI, the HTTP API and the web UI all call
these), and the writes the application makes by hand; the mirror's writes live in
:mod:`.mirroring`. SELECT lists are derived from the fields of the models in :mod:`.models`,
so a new column is one field there. Reads that take ``owner_id`` keep to that user's rows:
another user's session reads as "not found", never as "forbidden" (the API passes the
authenticated caller; row-level security says the same when the role is subject to it).
Identifiers are never built from input except the embedding dimension, which is
``int()``-cast before it reaches DDL.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict, Unpack

from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from .._ops import Op, Query
from ..errors import ExtensionMissing, InvalidInput, NotFound, PermissionDenied
from ..ownership import claim_thread
from ..paging import Page, check_limit, decode_cursor, page, parse_id, resolve_id
from ..tenancy import SET_TENANT_SQL, validate_id
from . import models
from .mirror import MESSAGE_COLS, MESSAGE_PLACEHOLDERS, MessageRow, clean_text
from .models import Message, Session, User

__all__ = [  # and the operations, used as ``ops.<name>``
    "Embedder",
    "MessageFields",
    "MessageQuery",
    "SearchScope",
    "SessionFields",
    "SessionQuery",
    "UserAttributes",
]

log = logging.getLogger("langgraph_pgstore.conversations")

ID = uuid.UUID | str
#: A user: its external id, or a ``User`` row (internal UUIDs only via the ``*_by_id`` ops).
UserRef = str | User
SessionStatus = Literal["active", "archived"]


class _Described(TypedDict, total=False):
    name: str | None
    metadata: Mapping[str, Any] | None
    """JSON object; on an update, merged into the stored one."""


class UserAttributes(_Described, total=False):
    """Attributes of a user (never match keys: the external id is the identity)."""

    email: str | None


class MessageFields(_Described, total=False):
    """Optional fields of ``add_message``."""

    message_id: str | None
    """Its id (default: a new UUID), as LangChain messages have one."""


class SessionFields(TypedDict, total=False):
    """What ``update_session`` can change (None or absent: unchanged)."""

    title: str | None
    status: SessionStatus | None
    metadata: Mapping[str, Any] | None
    """Merged into the stored metadata."""


class _PageQuery(TypedDict, total=False):
    limit: int
    """Page size, 1..1000."""
    cursor: str | None
    """``next_cursor`` of the previous page."""


class SessionQuery(_PageQuery, total=False):
    """Options of ``list_sessions``."""

    status: SessionStatus | None


class MessageQuery(_PageQuery, total=False):
    """Options of ``list_messages`` (a cursor keeps the direction of the first page)."""

    last: bool
    """Start from the newest messages (still returned in order), paging towards older ones."""
    role: str | None
    include_removed: bool
    """Also messages that left the thread's state (``removed_at`` set)."""
    owner_id: str | None
    """Only if the session is this user's (else ``NotFound``)."""


class SearchScope(TypedDict, total=False):
    """Where ``search_messages`` / ``search_similar`` look."""

    user: UserRef | None
    """Only this user's messages."""
    session_id: ID | None
    limit: int


def _columns(model: type[BaseModel], alias: str, computed: Iterable[str] = ()) -> str:
    """``alias.col, ...`` for the model's fields that are columns of its table."""
    skip = set(computed)
    return ", ".join(f"{alias}.{f}" for f in model.model_fields if f not in skip)


# ---------------------------------------------------------------- users
USER_COLS = _columns(User, "u")
GET_USER_SQL = f"SELECT {USER_COLS} FROM users u WHERE u.external_id = %s"
GET_USER_BY_ID_SQL = f"SELECT {USER_COLS} FROM users u WHERE u.id = %s"
#: Get-or-create by external id: ON CONFLICT DO NOTHING, then read back (race-safe).
INSERT_USER_SQL = f"""
INSERT INTO users AS u (external_id, email, name, metadata) VALUES (%s, %s, %s, %s)
ON CONFLICT (external_id) DO NOTHING RETURNING {USER_COLS}
"""
UPSERT_USER_SQL = """
INSERT INTO users (external_id, email, name, metadata) VALUES (%s, %s, %s, %s)
ON CONFLICT (external_id) DO UPDATE SET
  email = COALESCE(EXCLUDED.email, users.email), name = COALESCE(EXCLUDED.name, users.name),
  metadata = users.metadata || EXCLUDED.metadata, updated_at = now()
"""
#: ``{key}`` is ``u.external_id`` or ``u.id`` (see :func:`_update_user`), never input.
UPDATE_USER_SQL = f"""
UPDATE users AS u SET email = COALESCE(%(email)s, u.email), name = COALESCE(%(name)s, u.name),
  metadata = u.metadata || %(metadata)s, updated_at = now()
WHERE {{key}} = %(key)s RETURNING {USER_COLS}
"""
GET_USERS_BY_EXTERNAL_SQL = (
    f"SELECT {USER_COLS} FROM users u WHERE u.external_id = ANY(%s) ORDER BY u.external_id"
)
LIST_USERS_SQL = f"SELECT {USER_COLS} FROM users u ORDER BY u.created_at, u.id LIMIT %s OFFSET %s"

# ---------------------------------------------------------------- sessions
#: A session row as the API returns it: its columns and how many messages are visible.
SESSION_COLS = (
    _columns(Session, "s", computed=["message_count"])
    + ", (SELECT count(*) FROM messages m WHERE m.session_id = s.id AND m.removed_at IS NULL)"
    " AS message_count"
)
#: Rows of another owner are absent (``%(owner)s`` NULL: no owner filter).
SESSION_OWNER = "(%(owner)s::text IS NULL OR s.owner_id = %(owner)s)"
#: The thread's session, created on first sight; its owner is set once (a session that had
#: none is claimed) and returned with the previous one, so the caller can tell.
ENSURE_SESSION_SQL = """
WITH prev AS (SELECT owner_id FROM sessions WHERE thread_id = %(thread)s)
INSERT INTO sessions (thread_id, user_id, owner_id, metadata)
VALUES (%(thread)s, %(user)s, %(owner)s, %(metadata)s)
ON CONFLICT (thread_id) DO UPDATE SET updated_at = now(),
  user_id = COALESCE(sessions.user_id, EXCLUDED.user_id),
  owner_id = COALESCE(sessions.owner_id, EXCLUDED.owner_id)
RETURNING id, (xmax = 0) AS created, owner_id, (SELECT owner_id FROM prev) AS previous_owner
"""
GET_SESSION_SQL = f"SELECT {SESSION_COLS} FROM sessions s WHERE s.id = %(id)s AND {SESSION_OWNER}"
GET_SESSION_BY_THREAD_SQL = (
    f"SELECT {SESSION_COLS} FROM sessions s WHERE s.thread_id = %(thread)s AND {SESSION_OWNER}"
)
#: Keyset pagination on (updated_at, id) descending: newest first.
LIST_SESSIONS_SQL = f"""
SELECT {SESSION_COLS} FROM sessions s
WHERE {SESSION_OWNER}
  AND (%(status)s::text IS NULL OR s.status = %(status)s)
  AND (%(after_ts)s::timestamptz IS NULL
       OR (s.updated_at, s.id) < (%(after_ts)s, %(after_id)s::uuid))
ORDER BY s.updated_at DESC, s.id DESC LIMIT %(limit)s
"""
#: What :func:`resolve_session` looks up: ids in a prefix's range, and a thread's session.
SESSION_IDS_IN_RANGE = f"""
SELECT s.id FROM sessions s WHERE s.id BETWEEN %(lo)s AND %(hi)s AND {SESSION_OWNER}
ORDER BY s.id LIMIT 2
"""
SESSION_OF_THREAD = (
    f"SELECT s.id FROM sessions s WHERE s.thread_id = %(thread)s AND {SESSION_OWNER}"
)
UPDATE_SESSION_SQL = f"""
UPDATE sessions AS s SET title = COALESCE(%(title)s, s.title),
  status = COALESCE(%(status)s, s.status), metadata = s.metadata || %(metadata)s,
  updated_at = now()
WHERE s.id = %(id)s RETURNING {SESSION_COLS}
"""
DELETE_SESSION_SQL = "DELETE FROM sessions WHERE id = %s RETURNING thread_id"
SESSION_STATS_SQL = """
SELECT count(*) AS message_count,
  COALESCE(sum(input_tokens), 0)::bigint AS input_tokens,
  COALESCE(sum(output_tokens), 0)::bigint AS output_tokens,
  COALESCE(sum(total_tokens), 0)::bigint AS total_tokens,
  min(created_at) AS first_message_at, max(created_at) AS last_message_at
FROM messages WHERE session_id = %s AND removed_at IS NULL
"""
ROLE_COUNTS_SQL = """
SELECT role, count(*) AS n FROM messages
WHERE session_id = %s AND removed_at IS NULL GROUP BY role
"""

# ---------------------------------------------------------------- messages
MESSAGE_SELECT = _columns(Message, "m")
#: A message added by hand goes after the visible ones; no checkpoint: the mirror keeps it
#: (see :mod:`.mirroring`).
ADD_MESSAGE_SQL = f"""
INSERT INTO messages AS m (owner_id, session_id, position, {MESSAGE_COLS})
SELECT %s, %s, COALESCE(max(position) FILTER (WHERE removed_at IS NULL) + 1, 0),
       {MESSAGE_PLACEHOLDERS}
FROM messages WHERE session_id = %s
RETURNING {MESSAGE_SELECT}
"""
DELETE_MESSAGE_SQL = f"""
DELETE FROM messages m WHERE m.session_id = %s AND m.message_id = %s RETURNING {MESSAGE_SELECT}
"""
FIND_MESSAGE_SQL = "SELECT checkpoint_id FROM messages WHERE session_id = %s AND message_id = %s"
#: ``{keyset}`` and ``{order}`` come from :data:`_DIRECTIONS` only.
LIST_MESSAGES_SQL = f"""
SELECT {MESSAGE_SELECT} FROM messages m
WHERE m.session_id = %(session)s AND (%(removed)s OR m.removed_at IS NULL)
  AND (%(role)s::text IS NULL OR m.role = %(role)s) AND {{keyset}}
ORDER BY m.position {{order}}, m.id {{order}} LIMIT %(limit)s
"""
#: Cursor direction -> (keyset condition, order): "after" reads forward, "before" backward.
_DIRECTIONS = {
    "first": ("TRUE", "ASC"),
    "last": ("TRUE", "DESC"),
    "after": ("(m.position, m.id) > (%(pos)s, %(id)s)", "ASC"),
    "before": ("(m.position, m.id) < (%(pos)s, %(id)s)", "DESC"),
}
COUNT_MESSAGES_SQL = """
SELECT count(*) AS n FROM messages WHERE session_id = %s AND (%s OR removed_at IS NULL)
"""
SEARCH_TEXT_SQL = f"""
SELECT {MESSAGE_SELECT} FROM messages m
WHERE m.removed_at IS NULL AND m.content ILIKE %(pattern)s
  AND (%(session)s::uuid IS NULL OR m.session_id = %(session)s)
  AND (%(user)s::text IS NULL OR m.owner_id = %(user)s)
ORDER BY m.created_at DESC, m.id DESC LIMIT %(limit)s
"""
HAS_EMBEDDING_SQL = """
SELECT 1 FROM information_schema.columns
WHERE table_name = 'messages' AND column_name = 'embedding' AND table_schema = current_schema()
"""
PENDING_EMBEDDINGS_SQL = """
SELECT id, content FROM messages
WHERE embedding IS NULL AND removed_at IS NULL AND content <> '' AND role IN ('user', 'assistant')
ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
SET_EMBEDDING_SQL = "UPDATE messages SET embedding = %s::vector WHERE id = %s"
#: Partial expression index per dimension (a bare ``vector`` column can't be HNSW-indexed).
CREATE_HNSW_SQL = """
CREATE INDEX IF NOT EXISTS {name} ON messages
USING hnsw ((embedding::vector({dim})) vector_cosine_ops) WHERE vector_dims(embedding) = {dim}
"""
#: Whether a dynamic HNSW index exists, and whether this role may create one.
HNSW_STATE_SQL = """
SELECT to_regclass(%s) IS NOT NULL AS present, pg_has_role(c.relowner, 'USAGE') AS owner
FROM pg_class c WHERE c.oid = 'messages'::regclass
"""
_WARNED_HNSW: set[int] = set()
SEARCH_VECTOR_SQL = f"""
SELECT {MESSAGE_SELECT}, (m.embedding::vector({{dim}}) <=> %(q)s::vector({{dim}})) AS distance
FROM messages m
WHERE m.removed_at IS NULL AND vector_dims(m.embedding) = {{dim}}
  AND (%(session)s::uuid IS NULL OR m.session_id = %(session)s)
  AND (%(user)s::text IS NULL OR m.owner_id = %(user)s)
ORDER BY m.embedding::vector({{dim}}) <=> %(q)s::vector({{dim}}) LIMIT %(limit)s
"""

# ---------------------------------------------------------------- analysis
ANALYSIS_COLS = _columns(models.StoredChainAnalysis, "a")
UPSERT_ANALYSIS_SQL = f"""
INSERT INTO chain_analysis_results AS a (owner_id, session_id, vulnerabilities, chain_links,
  problem_behavior, prompting_event, consequences, solutions, summary)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (session_id) DO UPDATE SET vulnerabilities = EXCLUDED.vulnerabilities,
  chain_links = EXCLUDED.chain_links, problem_behavior = EXCLUDED.problem_behavior,
  prompting_event = EXCLUDED.prompting_event, consequences = EXCLUDED.consequences,
  solutions = EXCLUDED.solutions, summary = EXCLUDED.summary, updated_at = now()
RETURNING {ANALYSIS_COLS}
"""
GET_ANALYSIS_SQL = f"SELECT {ANALYSIS_COLS} FROM chain_analysis_results a WHERE a.session_id = %s"

# ---------------------------------------------------------------- deletion
#: Telemetry and checkpoints of deleted threads, counted (runs cascade to steps, llm_calls).
DELETE_THREAD_DATA_SQL = {
    table: f"WITH d AS (DELETE FROM {table} WHERE thread_id = ANY(%s) RETURNING 1) "
    "SELECT count(*) AS n FROM d"
    for table in ("llm_calls", "runs", "checkpoint_writes", "checkpoint_blobs", "checkpoints")
}


def _text(value: str | None, what: str) -> str | None:
    """Text the API writes must be storable as given: reject rather than alter."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, not {type(value).__name__}")
    if clean_text(value)[1]:
        raise InvalidInput(
            f"{what} contains a NUL byte or a lone surrogate, which PostgreSQL text can't store"
        )
    return value


def _json(value: Any, what: str) -> str:
    """Serialise metadata strictly: non-JSON values (sets, objects, NaN) are rejected."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from exc
    _text(text, what)
    if "\\u0000" in text:
        raise InvalidInput(f"{what} contains a NUL character, which jsonb can't store")
    return text


def _meta(value: Mapping[str, Any] | None, what: str = "metadata") -> str:
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{what} must be a mapping, not {type(value).__name__}")
    return _json(dict(value), what)


def _status(status: str | None) -> str | None:
    if status not in (None, "active", "archived"):
        raise InvalidInput(f"status must be 'active' or 'archived', not {status!r}")
    return status


def _owner(owner_id: str | None) -> str | None:
    return None if owner_id is None else validate_id(owner_id, "owner_id")


# ---------------------------------------------------------------- user ops
def get_user_by_id(user_id: ID) -> Op[User]:
    """A user by internal id (``users.id``): the only place a UUID names a user."""
    rows = yield Query(GET_USER_BY_ID_SQL, (parse_id(user_id, "user id"),))
    if not rows:
        raise NotFound(f"no user with id {user_id}")
    return User.model_validate(rows[0])


def find_user(external_id: str) -> Op[User | None]:
    """The user with this external id (a UUID-shaped one included), or None."""
    rows = yield Query(GET_USER_SQL, (validate_id(external_id, "external_id"),))
    return User.model_validate(rows[0]) if rows else None


def get_user(external_id: str) -> Op[User]:
    user = yield from find_user(external_id)
    if user is None:
        raise NotFound(f"no user {external_id!r}")
    return user


def resolve_user(
    external_id: str,
    *,
    email: str | None = None,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Op[tuple[User, bool]]:
    """The identity function: the users row of an external id, created on first sight;
    ``(user, created)``. Email, name and metadata are attributes, set on creation only."""
    ext = validate_id(external_id, "external_id")
    email, name, meta = _text(email, "email"), _text(name, "name"), _meta(metadata)
    for _ in range(3):  # a concurrent insert can win between our SELECT and INSERT
        rows = yield Query(GET_USER_SQL, (ext,))
        if rows:
            return User.model_validate(rows[0]), False
        rows = yield Query(INSERT_USER_SQL, (ext, email, name, meta))
        if rows:
            return User.model_validate(rows[0]), True
    raise InvalidInput(f"user {ext!r} could not be created (a concurrent insert kept winning?)")


def _update_user(
    key: Literal["external_id", "id"], value: Any, attributes: UserAttributes
) -> Op[User]:
    statement = sql.SQL(UPDATE_USER_SQL).format(key=sql.SQL(f"u.{key}"))
    params = {
        "key": value,
        "email": _text(attributes.get("email"), "email"),
        "name": _text(attributes.get("name"), "name"),
        "metadata": _meta(attributes.get("metadata")),
    }
    rows = yield Query(statement, params)
    if not rows:
        raise NotFound(f"no user {value!r}" if key == "external_id" else f"no user with id {value}")
    return User.model_validate(rows[0])


def update_user(external_id: str, **attributes: Unpack[UserAttributes]) -> Op[User]:
    """Change a user's attributes (None leaves one as it is; metadata is merged)."""
    ext = validate_id(external_id, "external_id")
    return (yield from _update_user("external_id", ext, attributes))


def update_user_by_id(user_id: ID, **attributes: Unpack[UserAttributes]) -> Op[User]:
    """:func:`update_user` for a user named by internal id."""
    return (yield from _update_user("id", parse_id(user_id, "user id"), attributes))


def upsert_users(users: Iterable[Mapping[str, Any]]) -> Op[list[User]]:
    """Bulk upsert by ``external_id`` (required): one statement, one transaction."""
    params = []
    for u in users:
        if not u.get("external_id"):
            raise InvalidInput("bulk upsert needs an external_id on every user")
        params.append(
            (
                validate_id(u["external_id"], "external_id"),
                _text(u.get("email"), "email"),
                _text(u.get("name"), "name"),
                _meta(u.get("metadata")),
            )
        )
    if not params:
        return []
    yield Query(UPSERT_USER_SQL, many=params)
    rows = yield Query(GET_USERS_BY_EXTERNAL_SQL, ([p[0] for p in params],))
    return [User.model_validate(r) for r in rows]


def list_users(limit: int = 100, offset: int = 0) -> Op[list[User]]:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(f"offset must be a non-negative int, got {offset!r}")
    rows = yield Query(LIST_USERS_SQL, (check_limit(limit), offset))
    return [User.model_validate(r) for r in rows]


def owner_key(user: UserRef | None) -> str | None:
    """The external id that filters by owner: a ``User`` or an external id (never a UUID:
    internal ids name users only through the ``*_by_id`` operations)."""
    if user is None or isinstance(user, User):
        return None if user is None else user.external_id
    if isinstance(user, uuid.UUID):
        raise InvalidInput(
            "users are named by external id; for an internal id, get the User with "
            "get_user_by_id and pass it"
        )
    return validate_id(user, "user")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# ---------------------------------------------------------------- session ops
def ensure_session(
    thread_id: str,
    *,
    owner: str | None = None,
    email: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Op[tuple[uuid.UUID, bool, str | None]]:
    """The session of a thread, created (with its user) on first sight; ``(id, created,
    owner)``. A thread has one owner: another user's run is refused; a session that had none
    is claimed with the thread's unowned rows."""
    user_id = None
    if owner is not None:
        user, _ = yield from resolve_user(owner, email=email)
        user_id = user.id
    thread = _text(thread_id, "thread_id")
    rows = yield Query(
        ENSURE_SESSION_SQL,
        {"thread": thread, "user": user_id, "owner": owner, "metadata": _meta(metadata)},
    )
    row = rows[0]
    if owner is not None and row["owner_id"] != owner:
        raise PermissionDenied(f"thread {thread!r} belongs to another user than {owner!r}")
    if owner is not None and not row["created"] and row["previous_owner"] is None:
        yield from claim_thread(str(thread), row["id"], owner)
    return row["id"], bool(row["created"]), row["owner_id"]


def create_session(
    thread_id: str | None = None,
    *,
    owner: str | None = None,
    title: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Op[Session]:
    """A session for a new thread (a random one by default), owned by ``owner``."""
    thread = _text(thread_id, "thread_id") or str(uuid.uuid4())
    rows = yield Query(GET_SESSION_BY_THREAD_SQL, {"thread": thread, "owner": None})
    if rows:
        raise InvalidInput(f"thread {thread!r} already has a session")
    sid, _, _ = yield from ensure_session(thread, owner=owner, metadata=metadata)
    if title is not None:
        return (yield from update_session(sid, title=title))
    return (yield from get_session(sid))


def _one_session(statement: str, params: dict[str, Any], missing: str) -> Op[Session]:
    rows = yield Query(statement, params)
    if not rows:
        raise NotFound(missing)
    return Session.model_validate(rows[0])


def get_session(session_id: ID, *, owner_id: str | None = None) -> Op[Session]:
    """One session; ``NotFound`` when absent (or, with ``owner_id``, another user's)."""
    sid = parse_id(session_id, "session id")
    params = {"id": sid, "owner": _owner(owner_id)}
    return (yield from _one_session(GET_SESSION_SQL, params, f"no session {sid}"))


def get_session_by_thread(thread_id: str, *, owner_id: str | None = None) -> Op[Session]:
    """The session of a LangGraph thread; ``NotFound`` as :func:`get_session`."""
    params = {"thread": _text(thread_id, "thread_id"), "owner": _owner(owner_id)}
    missing = f"no session for thread {thread_id!r}"
    return (yield from _one_session(GET_SESSION_BY_THREAD_SQL, params, missing))


def resolve_session(ref: str, *, owner_id: str | None = None) -> Op[uuid.UUID]:
    """The session a person means: its id, an unambiguous id prefix (4+ hex digits), or the
    LangGraph thread id it mirrors."""
    params = {"owner": _owner(owner_id)}
    return (
        yield from resolve_id(
            ref, "session", by_range=SESSION_IDS_IN_RANGE, by_thread=SESSION_OF_THREAD,
            params=params,
        )
    )  # fmt: skip


def list_sessions(
    user: UserRef | None = None,
    *,
    status: SessionStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Op[Page[Session]]:
    """Sessions of ``user`` (their owner; None: everyone's), most recently updated first,
    keyset-paginated."""
    after_ts, after_id = (
        decode_cursor(cursor, datetime.fromisoformat, uuid.UUID) if cursor else (None, None)
    )
    limit = check_limit(limit)
    rows = yield Query(
        LIST_SESSIONS_SQL,
        {
            "owner": owner_key(user),
            "status": _status(status),
            "after_ts": after_ts,
            "after_id": after_id,
            "limit": limit + 1,
        },
    )
    items = [Session.model_validate(r) for r in rows]
    return page(items, limit, lambda s: (s.updated_at, s.id))


def update_session(
    session_id: ID,
    *,
    title: str | None = None,
    status: SessionStatus | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Op[Session]:
    """Change a session's title, status or metadata (None leaves one as it is)."""
    rows = yield Query(
        UPDATE_SESSION_SQL,
        {
            "id": parse_id(session_id, "session id"),
            "title": _text(title, "title"),
            "status": _status(status),
            "metadata": _meta(metadata),
        },
    )
    if not rows:
        raise NotFound(f"no session {session_id}")
    return Session.model_validate(rows[0])


def delete_threads(threads: Sequence[str]) -> Op[dict[str, int]]:
    """Telemetry and checkpoints of the given threads (runs cascade to steps, llm_calls)."""
    counts: dict[str, int] = {}
    for table, statement in DELETE_THREAD_DATA_SQL.items():
        rows = yield Query(statement, (list(threads),))
        counts[table] = int(rows[0]["n"])
    return counts


def delete_session(session_id: ID) -> Op[dict[str, int]]:
    """The session, its messages and analysis (FK cascade), telemetry and checkpoints."""
    sid = parse_id(session_id, "session id")
    rows = yield Query(COUNT_MESSAGES_SQL, (sid, True))
    n_messages = int(rows[0]["n"])
    rows = yield Query(GET_ANALYSIS_SQL, (sid,))
    n_analysis = len(rows)
    rows = yield Query(DELETE_SESSION_SQL, (sid,))
    if not rows:
        raise NotFound(f"no session {session_id}")
    counts = {"sessions": 1, "messages": n_messages, "chain_analysis_results": n_analysis}
    counts.update((yield from delete_threads([rows[0]["thread_id"]])))
    return counts


def session_stats(session_id: ID, *, owner_id: str | None = None) -> Op[models.SessionStats]:
    """Visible messages per role, token sums, first and last message times."""
    session = yield from get_session(session_id, owner_id=owner_id)
    rows = yield Query(SESSION_STATS_SQL, (session.id,))
    roles = yield Query(ROLE_COUNTS_SQL, (session.id,))
    return models.SessionStats(
        session_id=session.id, by_role={r["role"]: int(r["n"]) for r in roles}, **rows[0]
    )


# ---------------------------------------------------------------- message ops
def add_message(
    session_id: ID,
    role: str,
    content: str,
    *,
    message_id: str | None = None,
    name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Op[Message]:
    """Append a message by hand (graphs don't need this: the checkpointer mirrors them).

    In a session a graph writes, the message is the application's own, not part of the
    graph's state: it goes after the messages visible now, and the mirror never marks it
    removed (whichever process writes the next checkpoint); :func:`delete_message` deletes it.
    """
    role = _text(role, "role") or ""
    if not role:
        raise InvalidInput("role must be non-empty")
    mid = _text(message_id, "message_id") or str(uuid.uuid4())
    row = MessageRow(
        mid,
        role,
        _text(content, "content") or "",
        name=_text(name, "name"),
        metadata=_meta(metadata),
    )
    session = yield from get_session(session_id)
    rows = yield Query(ADD_MESSAGE_SQL, (session.owner_id, session.id, *row, session.id))
    return Message.model_validate(rows[0])


def delete_message(session_id: ID, message_id: str) -> Op[Message]:
    """Delete a message added by hand (``Message.message_id``); returns it.

    A message mirrored from a graph belongs to the thread's state: remove it there
    (``RemoveMessage``) and the mirror marks it removed; deleting its row here is refused
    (``InvalidInput``), since the state would still hold it.
    """
    sid = parse_id(session_id, "session id")
    mid = _text(message_id, "message_id")
    rows = yield Query(FIND_MESSAGE_SQL, (sid, mid))
    if not rows:
        yield from get_session(sid)  # an unknown session says so
        raise NotFound(f"no message {message_id!r} in session {sid}")
    if rows[0]["checkpoint_id"] is not None:
        raise InvalidInput(
            f"message {message_id!r} is mirrored from the graph's state (checkpoint "
            f"{rows[0]['checkpoint_id']}): remove it from the state with RemoveMessage"
        )
    deleted = yield Query(DELETE_MESSAGE_SQL, (sid, mid))
    return Message.model_validate(deleted[0])


def list_messages(
    session_id: ID,
    *,
    limit: int = 100,
    cursor: str | None = None,
    last: bool = False,
    role: str | None = None,
    include_removed: bool = False,
    owner_id: str | None = None,
) -> Op[Page[Message]]:
    """A session's messages in conversation order (by ``position``), removed ones hidden
    unless ``include_removed``.

    The first page holds the oldest ``limit`` messages, or with ``last=True`` the newest
    (still in order); ``next_cursor`` continues in the same direction (towards newer ones, or
    with ``last`` towards older ones).
    """
    sid = parse_id(session_id, "session id")
    limit = check_limit(limit)
    params: dict[str, Any] = {
        "session": sid,
        "removed": bool(include_removed),
        "role": _text(role, "role"),
        "limit": limit + 1,
    }
    direction = "last" if last else "first"
    if cursor is not None:
        direction, params["pos"], params["id"] = decode_cursor(cursor, _direction, int, int)
    keyset, order = _DIRECTIONS[direction]
    statement = sql.SQL(LIST_MESSAGES_SQL.format(keyset=keyset, order=order))
    if owner_id is not None:  # check ownership first: another's session is "not found"
        yield from get_session(sid, owner_id=owner_id)
    rows = yield Query(statement, params)
    if not rows and owner_id is None:
        yield from get_session(sid)  # unknown session -> NotFound, not an empty page
    forward = order == "ASC"
    result = page(
        [Message.model_validate(r) for r in rows],
        limit,
        lambda m: ("after" if forward else "before", m.position, m.id),
    )
    if not forward:
        result["items"].reverse()
    return result


def _direction(value: str) -> str:
    if value not in ("after", "before"):
        raise ValueError(value)
    return value


def count_messages(
    session_id: ID, *, include_removed: bool = False, owner_id: str | None = None
) -> Op[int]:
    """How many messages the session shows (``include_removed``: also those removed)."""
    sid = parse_id(session_id, "session id")
    if owner_id is not None:
        yield from get_session(sid, owner_id=owner_id)
    rows = yield Query(COUNT_MESSAGES_SQL, (sid, bool(include_removed)))
    if not rows[0]["n"] and owner_id is None:
        yield from get_session(sid)
    return int(rows[0]["n"])


def search_text(
    query: str,
    *,
    user: UserRef | None = None,
    session_id: ID | None = None,
    limit: int = 20,
) -> Op[list[Message]]:
    """Case-insensitive substring search, newest first."""
    q = _text(query, "query") or ""
    pattern = "%" + _like_escape(q) + "%"
    sid = parse_id(session_id, "session id") if session_id is not None else None
    params = {"pattern": pattern, "session": sid, "user": owner_key(user)}
    rows = yield Query(SEARCH_TEXT_SQL, {**params, "limit": check_limit(limit)})
    return [Message.model_validate(r) for r in rows]


def _require_vector() -> Op[None]:
    rows = yield Query(HAS_EMBEDDING_SQL)
    if not rows:
        raise ExtensionMissing("vector", "message embeddings")


Embedder = Callable[[list[str]], Sequence[Sequence[float]]]


def embed_pending(embed: Embedder, *, batch_size: int = 64) -> Op[int]:
    """Embed one batch of messages that have no embedding yet; returns how many."""
    yield from _require_vector()
    return (yield from _embed_batch(embed, batch_size))


def embed_for_tenants(
    embed: Embedder, tenants: Sequence[str | None], *, batch_size: int = 64
) -> Op[tuple[int, bool]]:
    """The background embedder's pass: one batch for each tenant whose commits it was told
    of, acting for each in turn (``pgstore.tenant`` is transaction-local; under row-level
    security a transaction sees only its tenant's messages, and the embedder's thread acts
    for none). Returns how many were embedded, and whether a batch was full (more to do)."""
    yield from _require_vector()
    total, more = 0, False
    for tenant in tenants:
        yield Query(SET_TENANT_SQL, (tenant or "",))
        n = yield from _embed_batch(embed, batch_size)
        total, more = total + n, more or n >= batch_size
    return total, more


def _embed_batch(embed: Embedder, batch_size: int) -> Op[int]:
    rows = yield Query(PENDING_EMBEDDINGS_SQL, (int(batch_size),))
    if not rows:
        return 0
    vectors = [list(map(float, v)) for v in embed([r["content"] for r in rows])]
    if len(vectors) != len(rows):
        raise InvalidInput(f"embedder returned {len(vectors)} vectors for {len(rows)} texts")
    dims = {len(v) for v in vectors}
    for dim in dims:
        yield from ensure_hnsw(dim)
    yield Query(
        SET_EMBEDDING_SQL, many=[(str(v), r["id"]) for v, r in zip(vectors, rows, strict=True)]
    )
    return len(rows)


def ensure_hnsw(dim: int) -> Op[None]:
    """The HNSW index of ``dim``-dimensional embeddings, created on first sight. DDL needs the
    table's owner (even ``IF NOT EXISTS``): an application role only checks it is there, and
    without it search still works, by scanning (logged once)."""
    dim = int(dim)
    if not 0 < dim <= 2000:
        raise InvalidInput(f"HNSW indexes vectors of 1..2000 dimensions, not {dim}")
    name = f"ix_dyn_messages_embedding_{dim}"
    rows = yield Query(HNSW_STATE_SQL, (name,))
    if rows[0]["present"]:
        return
    if not rows[0]["owner"]:
        if dim not in _WARNED_HNSW:
            _WARNED_HNSW.add(dim)
            log.warning(
                "no HNSW index for %d-d message embeddings, and this role can't create it "
                "(not the owner of messages): similarity search scans; embed once as the owner",
                dim,
            )
        return
    yield Query(sql.SQL(CREATE_HNSW_SQL).format(name=sql.Identifier(name), dim=sql.Literal(dim)))


def search_similar(
    vector: Sequence[float],
    *,
    user: UserRef | None = None,
    session_id: ID | None = None,
    limit: int = 10,
) -> Op[list[models.MessageHit]]:
    """Nearest visible messages to ``vector`` (cosine distance), closest first."""
    yield from _require_vector()
    vec = [float(x) for x in vector]
    if not vec:
        raise InvalidInput("empty query vector")
    sid = parse_id(session_id, "session id") if session_id is not None else None
    query = sql.SQL(SEARCH_VECTOR_SQL).format(dim=sql.Literal(len(vec)))
    params = {"q": str(vec), "session": sid, "user": owner_key(user)}
    rows = yield Query(query, {**params, "limit": check_limit(limit)})
    return [
        models.MessageHit(message=Message.model_validate(r), distance=float(r["distance"]))
        for r in rows
    ]


# ---------------------------------------------------------------- analysis ops
def upsert_analysis(
    session_id: ID, analysis: models.ChainAnalysis | Mapping[str, Any]
) -> Op[models.StoredChainAnalysis]:
    """Store the session's chain analysis (one per session; a second replaces the first)."""
    try:
        a = models.ChainAnalysis.model_validate(
            analysis.model_dump() if isinstance(analysis, models.ChainAnalysis) else analysis
        )
    except ValueError as exc:
        raise InvalidInput(f"not a valid ChainAnalysis: {exc}") from exc
    data = a.model_dump(mode="json")
    for key in ("problem_behavior", "prompting_event", "summary"):
        _text(data[key], key)
    session = yield from get_session(session_id)
    rows = yield Query(
        UPSERT_ANALYSIS_SQL,
        (
            session.owner_id,
            session.id,
            Jsonb(data["vulnerabilities"]),
            _json(data["chain_links"], "chain_links"),
            data["problem_behavior"],
            data["prompting_event"],
            Jsonb(data["consequences"]),
            Jsonb(data["solutions"]),
            data["summary"],
        ),
    )
    return models.StoredChainAnalysis.model_validate(rows[0])


def save_analysis_for_thread(
    thread_id: str, analysis: models.ChainAnalysis | Mapping[str, Any]
) -> Op[models.StoredChainAnalysis]:
    """:func:`upsert_analysis` for the session of a LangGraph thread (for a graph node)."""
    session = yield from get_session_by_thread(thread_id)
    return (yield from upsert_analysis(session.id, analysis))


def get_analysis(
    session_id: ID, *, owner_id: str | None = None
) -> Op[models.StoredChainAnalysis | None]:
    """The session's chain analysis, or None; ``NotFound`` for an unknown session."""
    session = yield from get_session(session_id, owner_id=owner_id)
    rows = yield Query(GET_ANALYSIS_SQL, (session.id,))
    return models.StoredChainAnalysis.model_validate(rows[0]) if rows else None
