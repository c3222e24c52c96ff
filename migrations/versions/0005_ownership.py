"""ownership: an owner_id on every row, tenant set per transaction, tenancy that fails closed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24

- ``users.external_id`` becomes the identity (NOT NULL; users that had none get their UUID as
  text); ``email`` is an attribute, no longer unique. ``users.owner_id`` is generated from it.
- ``owner_id text`` (indexed) on sessions, messages, chain_analysis_results, runs, steps,
  llm_calls, memory_items, memory_vectors, and on langgraph's checkpoints, checkpoint_blobs and
  checkpoint_writes with ``DEFAULT pgstore_owner()`` (the transaction's ``pgstore.tenant``,
  else ``pgstore.owner``), so PostgresSaver's own INSERTs fill it unchanged.
- Backfill, once: sessions from their user; runs from ``user_id``; steps, LLM calls, messages
  and analyses from their run or session; checkpoint rows from their thread's session, else
  the thread's first run with a user. Memories from their namespace, a best guess made once
  and never again: the first label that is a known user id (a ``users.external_id`` or a
  ``runs.user_id``); no such label leaves the memory shared (NULL).
- The 0004 policies (tenant = any namespace label, unscoped sees all) are replaced by one
  column comparison per table, ``owner_id IS NOT DISTINCT FROM pgstore_tenant()``; memories
  also let anyone read shared rows (owner NULL). Row-level security is enabled on all twelve
  tables: tenancy is on (``langgraph-pgstore tenancy off`` turns it off).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OURS = (
    "sessions",
    "messages",
    "chain_analysis_results",
    "runs",
    "steps",
    "llm_calls",
    "memory_items",
    "memory_vectors",
)
CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")
MEMORY = ("memory_items", "memory_vectors")

FUNCTIONS = (
    """CREATE FUNCTION pgstore_tenant() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
       AS $$ SELECT nullif(current_setting('pgstore.tenant', true), '') $$""",
    """CREATE FUNCTION pgstore_owner() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE
       AS $$ SELECT coalesce(nullif(current_setting('pgstore.tenant', true), ''),
                             nullif(current_setting('pgstore.owner', true), '')) $$""",
)

#: Owner of each thread: its session's, else its first run with a user.
THREAD_OWNERS = """
WITH owners AS (
  SELECT thread_id, owner_id FROM sessions WHERE owner_id IS NOT NULL
  UNION ALL
  SELECT * FROM (
    SELECT DISTINCT ON (thread_id) thread_id, owner_id FROM runs
    WHERE owner_id IS NOT NULL AND thread_id IS NOT NULL
      AND thread_id NOT IN (SELECT thread_id FROM sessions WHERE owner_id IS NOT NULL)
    ORDER BY thread_id, started_at) AS first_runs)
"""

BACKFILL = (
    "UPDATE sessions s SET owner_id = u.external_id FROM users u WHERE u.id = s.user_id",
    "UPDATE runs SET owner_id = user_id WHERE user_id IS NOT NULL",
    THREAD_OWNERS
    + """UPDATE sessions s SET owner_id = o.owner_id FROM owners o
       WHERE s.owner_id IS NULL AND o.thread_id = s.thread_id""",
    THREAD_OWNERS
    + """UPDATE runs r SET owner_id = o.owner_id FROM owners o
       WHERE r.owner_id IS NULL AND o.thread_id = r.thread_id""",
    """UPDATE messages m SET owner_id = s.owner_id FROM sessions s
       WHERE s.id = m.session_id AND s.owner_id IS NOT NULL""",
    """UPDATE chain_analysis_results a SET owner_id = s.owner_id FROM sessions s
       WHERE s.id = a.session_id AND s.owner_id IS NOT NULL""",
    """UPDATE steps x SET owner_id = r.owner_id FROM runs r
       WHERE r.id = x.run_id AND r.owner_id IS NOT NULL""",
    """UPDATE llm_calls x SET owner_id = r.owner_id FROM runs r
       WHERE r.id = x.run_id AND r.owner_id IS NOT NULL""",
    """WITH known AS (SELECT external_id AS id FROM users
                      UNION SELECT owner_id FROM runs WHERE owner_id IS NOT NULL)
       UPDATE memory_items m SET owner_id = (
         SELECT x.label FROM unnest(string_to_array(m.prefix, '.')) WITH ORDINALITY AS x(label, n)
         WHERE x.label IN (SELECT id FROM known) ORDER BY x.n LIMIT 1)""",
)
BACKFILL_VECTORS = """UPDATE memory_vectors v SET owner_id = i.owner_id FROM memory_items i
   WHERE i.prefix = v.prefix AND i.key = v.key AND i.owner_id IS NOT NULL"""
BACKFILL_CHECKPOINTS = (
    THREAD_OWNERS
    + """UPDATE {table} t SET owner_id = o.owner_id
   FROM owners o WHERE o.thread_id = t.thread_id"""
)

OWN_ROWS = "owner_id IS NOT DISTINCT FROM pgstore_tenant()"

# What 0004 created, for the downgrade.
OLD_TENANT = "nullif(current_setting('pgstore.user_id', true), '')"
OLD_USERS = (
    f"SELECT id FROM users WHERE external_id = {OLD_TENANT} OR email = {OLD_TENANT} "
    f"OR id::text = {OLD_TENANT}"
)
OLD_SESSIONS = f"SELECT id FROM sessions WHERE user_id IN ({OLD_USERS})"
OLD_RUNS = f"SELECT id FROM runs WHERE user_id = {OLD_TENANT}"
OLD_POLICIES = {
    "users": f"external_id = {OLD_TENANT} OR email = {OLD_TENANT} OR id::text = {OLD_TENANT}",
    "sessions": f"user_id IN ({OLD_USERS})",
    "messages": f"session_id IN ({OLD_SESSIONS})",
    "chain_analysis_results": f"session_id IN ({OLD_SESSIONS})",
    "runs": f"user_id = {OLD_TENANT}",
    "steps": f"run_id IN ({OLD_RUNS})",
    "llm_calls": f"run_id IN ({OLD_RUNS})",
    "memory_items": f"{OLD_TENANT} = ANY(string_to_array(prefix, '.'))",
    "memory_vectors": f"{OLD_TENANT} = ANY(string_to_array(prefix, '.'))",
}


def _exists(table: str) -> bool:
    return bool(op.get_bind().exec_driver_sql(f"SELECT to_regclass('{table}')").scalar())


def upgrade() -> None:
    ours = [t for t in OURS if _exists(t)]  # memory_vectors is absent without pgvector
    for table in ["users", *ours]:
        op.execute(f"DROP POLICY IF EXISTS pgstore_tenant ON {table}")
    for statement in FUNCTIONS:
        op.execute(statement)

    op.execute("UPDATE users SET external_id = id::text WHERE external_id IS NULL")
    op.alter_column("users", "external_id", nullable=False)
    op.drop_constraint("uq_users_email", "users", type_="unique")
    op.add_column(
        "users", sa.Column("owner_id", sa.Text(), sa.Computed("external_id", persisted=True))
    )
    op.create_index("ix_users_owner_id", "users", ["owner_id"])
    for table in ours:
        op.add_column(table, sa.Column("owner_id", sa.Text()))
        op.create_index(f"ix_{table}_owner_id", table, ["owner_id"])
    for statement in BACKFILL:
        op.execute(statement)
    if "memory_vectors" in ours:
        op.execute(BACKFILL_VECTORS)

    # Not our tables: the column is added here only (autogenerate never sees them). Backfill
    # before the default, so existing rows aren't rewritten with a default evaluated once.
    for table in CHECKPOINT_TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN owner_id text")
        op.execute(BACKFILL_CHECKPOINTS.format(table=table))
        op.execute(f"ALTER TABLE {table} ALTER COLUMN owner_id SET DEFAULT pgstore_owner()")
        op.execute(
            f"CREATE INDEX ix_{table}_owner_id ON {table} (owner_id) WHERE owner_id IS NOT NULL"
        )

    for table in ["users", *ours, *CHECKPOINT_TABLES]:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY pgstore_owner ON {table} USING ({OWN_ROWS}) WITH CHECK ({OWN_ROWS})"
        )
    for table in MEMORY:
        if table in ours:
            op.execute(
                f"CREATE POLICY pgstore_shared_read ON {table} FOR SELECT USING (owner_id IS NULL)"
            )


def downgrade() -> None:
    ours = [t for t in OURS if _exists(t)]
    for table in ["users", *ours, *CHECKPOINT_TABLES]:
        op.execute(f"DROP POLICY IF EXISTS pgstore_owner ON {table}")
        op.execute(f"DROP POLICY IF EXISTS pgstore_shared_read ON {table}")
    for table in CHECKPOINT_TABLES:
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        op.execute(f"DROP INDEX IF EXISTS ix_{table}_owner_id")
        op.execute(f"ALTER TABLE {table} DROP COLUMN owner_id")
    for table in ours:
        op.drop_index(f"ix_{table}_owner_id", table_name=table)
        op.drop_column(table, "owner_id")
    op.drop_index("ix_users_owner_id", table_name="users")
    op.drop_column("users", "owner_id")
    op.create_unique_constraint("uq_users_email", "users", ["email"])
    op.alter_column("users", "external_id", nullable=True)
    op.execute("DROP FUNCTION pgstore_owner()")
    op.execute("DROP FUNCTION pgstore_tenant()")
    unscoped = f"{OLD_TENANT} IS NULL"
    for table in ["users", *ours]:
        predicate = OLD_POLICIES[table]
        op.execute(
            f"CREATE POLICY pgstore_tenant ON {table} "
            f"USING ({unscoped} OR {predicate}) WITH CHECK ({unscoped} OR {predicate})"
        )
