"""Sans-IO operations of the conversations API: each written once, run sync or async.

SQL lives in the constants below; identifiers are never built from input except the
embedding dimension, which is ``int()``-cast before it reaches DDL.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from .._ops import Op, Query
from ..errors import ExtensionMissing, InvalidInput, NotFound, PermissionDenied
from ..ownership import claim_thread
from ..tenancy import validate_id
from .mirror import MESSAGE_COLS, MESSAGE_PLACEHOLDERS, MessageRow
from .models import (
    ChainAnalysis,
    Message,
    MessageHit,
    Page,
    Session,
    SessionStats,
    StoredChainAnalysis,
    User,
)

# ---------------------------------------------------------------- users
GET_USER_BY_ID_SQL = "SELECT * FROM users WHERE id = %s"
GET_USER_SQL = "SELECT * FROM users WHERE external_id = %s"
#: Get-or-create by external id: ON CONFLICT DO NOTHING, then read back (race-safe).
INSERT_USER_SQL = """
INSERT INTO users (external_id, email, name, metadata) VALUES (%s, %s, %s, %s)
ON CONFLICT (external_id) DO NOTHING RETURNING *
"""
UPSERT_USER_SQL = """
INSERT INTO users (external_id, email, name, metadata) VALUES (%s, %s, %s, %s)
ON CONFLICT (external_id) DO UPDATE SET
  email = COALESCE(EXCLUDED.email, users.email), name = COALESCE(EXCLUDED.name, users.name),
  metadata = users.metadata || EXCLUDED.metadata, updated_at = now()
"""
GET_USERS_BY_EXTERNAL_SQL = "SELECT * FROM users WHERE external_id = ANY(%s) ORDER BY external_id"
LIST_USERS_SQL = "SELECT * FROM users ORDER BY created_at, id LIMIT %s OFFSET %s"

# ---------------------------------------------------------------- sessions
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
GET_SESSION_SQL = "SELECT * FROM sessions WHERE id = %s"
GET_SESSION_BY_THREAD_SQL = "SELECT * FROM sessions WHERE thread_id = %s"
#: Keyset pagination on (updated_at, id) descending: newest first.
LIST_SESSIONS_SQL = """
SELECT * FROM sessions
WHERE (%(user)s::text IS NULL OR owner_id = %(user)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(after_ts)s::timestamptz IS NULL OR (updated_at, id) < (%(after_ts)s, %(after_id)s::uuid))
ORDER BY updated_at DESC, id DESC LIMIT %(limit)s
"""
UPDATE_SESSION_SQL = """
UPDATE sessions SET title = COALESCE(%(title)s, title), status = COALESCE(%(status)s, status),
  metadata = metadata || %(metadata)s, updated_at = now()
WHERE id = %(id)s RETURNING *
"""
DELETE_SESSION_SQL = "DELETE FROM sessions WHERE id = %s RETURNING thread_id"
SESSION_STATS_SQL = """
SELECT count(*) AS message_count,
  COALESCE(sum(input_tokens), 0) AS input_tokens, COALESCE(sum(output_tokens), 0) AS output_tokens,
  COALESCE(sum(total_tokens), 0) AS total_tokens,
  min(created_at) AS first_message_at, max(created_at) AS last_message_at,
  COALESCE(jsonb_object_agg(role, n) FILTER (WHERE role IS NOT NULL), '{}') AS by_role
FROM (SELECT role, input_tokens, output_tokens, total_tokens, created_at,
             count(*) OVER (PARTITION BY role) AS n
      FROM messages WHERE session_id = %s AND removed_at IS NULL) m
"""
SESSION_STATS_SIMPLE_SQL = """
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
#: A message added by hand goes after the visible ones; no checkpoint: the mirror keeps it.
ADD_MESSAGE_SQL = f"""
INSERT INTO messages (owner_id, session_id, position, {MESSAGE_COLS})
SELECT %s, %s, COALESCE(max(position) FILTER (WHERE removed_at IS NULL) + 1, 0),
       {MESSAGE_PLACEHOLDERS}
FROM messages WHERE session_id = %s
RETURNING *
"""
LIST_MESSAGES_SQL = """
SELECT * FROM messages
WHERE session_id = %(session)s AND (%(removed)s OR removed_at IS NULL)
  AND (%(role)s::text IS NULL OR role = %(role)s)
  AND (%(after)s::int IS NULL OR position > %(after)s)
  AND (%(before)s::int IS NULL OR position < %(before)s)
ORDER BY position {order}, id {order} LIMIT %(limit)s
"""
COUNT_MESSAGES_SQL = """
SELECT count(*) AS n FROM messages WHERE session_id = %s AND (%s OR removed_at IS NULL)
"""
SEARCH_TEXT_SQL = """
SELECT m.* FROM messages m
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
SEARCH_VECTOR_SQL = """
SELECT m.*, (m.embedding::vector({dim}) <=> %(q)s::vector({dim})) AS distance
FROM messages m
WHERE m.removed_at IS NULL AND vector_dims(m.embedding) = {dim}
  AND (%(session)s::uuid IS NULL OR m.session_id = %(session)s)
  AND (%(user)s::text IS NULL OR m.owner_id = %(user)s)
ORDER BY m.embedding::vector({dim}) <=> %(q)s::vector({dim}) LIMIT %(limit)s
"""

# ---------------------------------------------------------------- analysis
UPSERT_ANALYSIS_SQL = """
INSERT INTO chain_analysis_results (owner_id, session_id, vulnerabilities, chain_links,
  problem_behavior, prompting_event, consequences, solutions, summary)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (session_id) DO UPDATE SET vulnerabilities = EXCLUDED.vulnerabilities,
  chain_links = EXCLUDED.chain_links, problem_behavior = EXCLUDED.problem_behavior,
  prompting_event = EXCLUDED.prompting_event, consequences = EXCLUDED.consequences,
  solutions = EXCLUDED.solutions, summary = EXCLUDED.summary, updated_at = now()
RETURNING *
"""
GET_ANALYSIS_SQL = "SELECT * FROM chain_analysis_results WHERE session_id = %s"

# ---------------------------------------------------------------- deletion
DELETE_THREAD_DATA_SQL = {
    "llm_calls": "DELETE FROM llm_calls WHERE thread_id = ANY(%s)",
    "runs": "DELETE FROM runs WHERE thread_id = ANY(%s)",
    "checkpoint_writes": "DELETE FROM checkpoint_writes WHERE thread_id = ANY(%s)",
    "checkpoint_blobs": "DELETE FROM checkpoint_blobs WHERE thread_id = ANY(%s)",
    "checkpoints": "DELETE FROM checkpoints WHERE thread_id = ANY(%s)",
}


def _id(value: uuid.UUID | str, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"{what} id {value!r} is not a UUID") from exc


def _text(value: str | None, what: str) -> str | None:
    """Text the API writes must be storable as given: reject rather than alter."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL byte, which PostgreSQL text can't store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid UTF-8 (lone surrogate?): {exc}") from exc
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


# ---------------------------------------------------------------- user ops
def get_user_by_id(user_id: uuid.UUID | str) -> Op[User]:
    """A user by internal id (``users.id``): the only place a UUID names a user."""
    rows = yield Query(GET_USER_BY_ID_SQL, (_id(user_id, "user"),))
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
    rows = yield Query(LIST_USERS_SQL, (int(limit), int(offset)))
    return [User.model_validate(r) for r in rows]


def owner_key(user: str | User | None) -> str | None:
    """The external id that filters by owner: a ``User`` or an external id (never a UUID:
    internal ids name users only through ``get_user_by_id``)."""
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
    rows = yield Query(GET_SESSION_BY_THREAD_SQL, (thread,))
    if rows:
        raise InvalidInput(f"thread {thread!r} already has a session")
    sid, _, _ = yield from ensure_session(thread, owner=owner, metadata=metadata)
    if title is not None:
        return (yield from update_session(sid, title=title))
    return (yield from get_session(sid))


def get_session(session_id: uuid.UUID | str) -> Op[Session]:
    rows = yield Query(GET_SESSION_SQL, (_id(session_id, "session"),))
    if not rows:
        raise NotFound(f"no session {session_id}")
    return Session.model_validate(rows[0])


def get_session_by_thread(thread_id: str) -> Op[Session]:
    rows = yield Query(GET_SESSION_BY_THREAD_SQL, (_text(thread_id, "thread_id"),))
    if not rows:
        raise NotFound(f"no session for thread {thread_id!r}")
    return Session.model_validate(rows[0])


def _encode_cursor(ts: datetime, ident: Any) -> str:
    return base64.urlsafe_b64encode(f"{ts.isoformat()}|{ident}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        ts, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(ts), ident
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed cursor {cursor!r}") from exc


def list_sessions(
    user: str | User | None = None,
    *,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Op[Page[Session]]:
    """Newest first (by ``updated_at``), keyset-paginated."""
    if status not in (None, "active", "archived"):
        raise InvalidInput(f"status must be 'active' or 'archived', not {status!r}")
    uid = owner_key(user)
    after_ts, after_id = _decode_cursor(cursor) if cursor else (None, None)
    limit = max(1, int(limit))
    rows = yield Query(
        LIST_SESSIONS_SQL,
        {
            "user": uid,
            "status": status,
            "after_ts": after_ts,
            "after_id": after_id,
            "limit": limit + 1,
        },
    )
    items = [Session.model_validate(r) for r in rows[:limit]]
    nxt = _encode_cursor(items[-1].updated_at, items[-1].id) if len(rows) > limit else None
    return Page[Session](items=items, next_cursor=nxt)


def update_session(
    session_id: uuid.UUID | str,
    *,
    title: str | None = None,
    status: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Op[Session]:
    if status not in (None, "active", "archived"):
        raise InvalidInput(f"status must be 'active' or 'archived', not {status!r}")
    rows = yield Query(
        UPDATE_SESSION_SQL,
        {
            "id": _id(session_id, "session"),
            "title": _text(title, "title"),
            "status": status,
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
        rows = yield Query(
            statement.replace("DELETE", "WITH d AS (DELETE", 1) + " RETURNING 1) "
            "SELECT count(*) AS n FROM d",
            (list(threads),),
        )
        counts[table] = int(rows[0]["n"])
    return counts


def delete_session(session_id: uuid.UUID | str) -> Op[dict[str, int]]:
    """The session, its messages and analysis (FK cascade), telemetry and checkpoints."""
    sid = _id(session_id, "session")
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


def session_stats(session_id: uuid.UUID | str) -> Op[SessionStats]:
    sid = _id(session_id, "session")
    yield from get_session(sid)
    rows = yield Query(SESSION_STATS_SIMPLE_SQL, (sid,))
    roles = yield Query(ROLE_COUNTS_SQL, (sid,))
    return SessionStats(session_id=sid, by_role={r["role"]: int(r["n"]) for r in roles}, **rows[0])


# ---------------------------------------------------------------- message ops
def add_message(
    session_id: uuid.UUID | str,
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
    removed (whichever process writes the next checkpoint): removing it is up to the caller.
    """
    sid = _id(session_id, "session")
    role = _text(role, "role") or ""
    if not role:
        raise InvalidInput("role must be non-empty")
    content = _text(content, "content") or ""
    meta = _meta(metadata)
    session = yield from get_session(sid)
    mid = _text(message_id, "message_id") or str(uuid.uuid4())
    row = MessageRow(mid, role, content, name=_text(name, "name"), metadata=meta)
    rows = yield Query(ADD_MESSAGE_SQL, (session.owner_id, sid, *row, sid))
    return Message.model_validate(rows[0])


def list_messages(
    session_id: uuid.UUID | str,
    *,
    limit: int = 100,
    after: int | None = None,
    before: int | None = None,
    last: bool = False,
    role: str | None = None,
    include_removed: bool = False,
) -> Op[list[Message]]:
    """Chronological (by position). ``last=True`` gives the newest ``limit``, still in order;
    ``after``/``before`` take a message ``position`` for paging."""
    sid = _id(session_id, "session")
    order = "DESC" if last or (before is not None and after is None) else "ASC"
    query = sql.SQL(LIST_MESSAGES_SQL.format(order=order))  # order is from an allowlist
    rows = yield Query(
        query,
        {
            "session": sid,
            "removed": bool(include_removed),
            "role": role,
            "after": after,
            "before": before,
            "limit": max(1, int(limit)),
        },
    )
    if not rows:
        yield from get_session(sid)  # unknown session -> NotFound, not an empty list
    items = [Message.model_validate(r) for r in rows]
    return items[::-1] if order == "DESC" else items


def count_messages(session_id: uuid.UUID | str, *, include_removed: bool = False) -> Op[int]:
    sid = _id(session_id, "session")
    rows = yield Query(COUNT_MESSAGES_SQL, (sid, bool(include_removed)))
    if not rows[0]["n"]:
        yield from get_session(sid)
    return int(rows[0]["n"])


def search_text(
    query: str,
    *,
    user: str | User | None = None,
    session_id: uuid.UUID | str | None = None,
    limit: int = 20,
) -> Op[list[Message]]:
    """Case-insensitive substring search, newest first."""
    q = _text(query, "query") or ""
    pattern = "%" + _like_escape(q) + "%"
    uid = owner_key(user)
    sid = _id(session_id, "session") if session_id is not None else None
    rows = yield Query(
        SEARCH_TEXT_SQL, {"pattern": pattern, "session": sid, "user": uid, "limit": int(limit)}
    )
    return [Message.model_validate(r) for r in rows]


def _require_vector() -> Op[None]:
    rows = yield Query(HAS_EMBEDDING_SQL)
    if not rows:
        raise ExtensionMissing("vector", "message embeddings")


Embedder = Callable[[list[str]], Sequence[Sequence[float]]]


def embed_pending(embed: Embedder, *, batch_size: int = 64) -> Op[int]:
    """Embed one batch of messages that have no embedding yet; returns how many."""
    yield from _require_vector()
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
    dim = int(dim)
    if not 0 < dim <= 2000:
        raise InvalidInput(f"HNSW indexes vectors of 1..2000 dimensions, not {dim}")
    name = sql.Identifier(f"ix_dyn_messages_embedding_{dim}")
    yield Query(sql.SQL(CREATE_HNSW_SQL).format(name=name, dim=sql.Literal(dim)))


def search_similar(
    vector: Sequence[float],
    *,
    user: str | User | None = None,
    session_id: uuid.UUID | str | None = None,
    limit: int = 10,
) -> Op[list[MessageHit]]:
    yield from _require_vector()
    vec = [float(x) for x in vector]
    if not vec:
        raise InvalidInput("empty query vector")
    uid = owner_key(user)
    sid = _id(session_id, "session") if session_id is not None else None
    query = sql.SQL(SEARCH_VECTOR_SQL).format(dim=sql.Literal(len(vec)))
    rows = yield Query(query, {"q": str(vec), "session": sid, "user": uid, "limit": int(limit)})
    return [
        MessageHit(message=Message.model_validate(r), distance=float(r["distance"])) for r in rows
    ]


# ---------------------------------------------------------------- analysis ops
def upsert_analysis(
    session_id: uuid.UUID | str, analysis: ChainAnalysis | Mapping[str, Any]
) -> Op[StoredChainAnalysis]:
    sid = _id(session_id, "session")
    try:
        a = ChainAnalysis.model_validate(
            analysis.model_dump() if isinstance(analysis, ChainAnalysis) else analysis
        )
    except ValueError as exc:
        raise InvalidInput(f"not a valid ChainAnalysis: {exc}") from exc
    data = a.model_dump(mode="json")
    for key in ("problem_behavior", "prompting_event", "summary"):
        _text(data[key], key)
    session = yield from get_session(sid)
    rows = yield Query(
        UPSERT_ANALYSIS_SQL,
        (
            session.owner_id,
            sid,
            Jsonb(data["vulnerabilities"]),
            _json(data["chain_links"], "chain_links"),
            data["problem_behavior"],
            data["prompting_event"],
            Jsonb(data["consequences"]),
            Jsonb(data["solutions"]),
            data["summary"],
        ),
    )
    return StoredChainAnalysis.model_validate(rows[0])


def get_analysis(session_id: uuid.UUID | str) -> Op[StoredChainAnalysis | None]:
    rows = yield Query(GET_ANALYSIS_SQL, (_id(session_id, "session"),))
    return StoredChainAnalysis.model_validate(rows[0]) if rows else None
