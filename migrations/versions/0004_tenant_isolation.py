"""row-level security: a connection scoped to a tenant sees only that user's rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23

A connection that sets ``pgstore.user_id`` (``connect(..., tenant="alice")``) can read, count,
update and delete only rows of that user: users (by external id, email or id), their
sessions, messages, chain analyses, runs, steps, LLM calls, and memories whose namespace has
the user's id as a label. With the setting unset, policies let everything through, so
unscoped applications behave as before. Policies bind roles that don't own the tables (the
application role after ``migrate``); owners and superusers bypass them, as PostgreSQL does.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT = "nullif(current_setting('pgstore.user_id', true), '')"
UNSCOPED = f"{TENANT} IS NULL"
OWN_USERS = (
    f"SELECT id FROM users WHERE external_id = {TENANT} OR email = {TENANT} OR id::text = {TENANT}"
)
OWN_SESSIONS = f"SELECT id FROM sessions WHERE user_id IN ({OWN_USERS})"
OWN_RUNS = f"SELECT id FROM runs WHERE user_id = {TENANT}"

POLICIES = {
    "users": f"external_id = {TENANT} OR email = {TENANT} OR id::text = {TENANT}",
    "sessions": f"user_id IN ({OWN_USERS})",
    "messages": f"session_id IN ({OWN_SESSIONS})",
    "chain_analysis_results": f"session_id IN ({OWN_SESSIONS})",
    "runs": f"user_id = {TENANT}",
    "steps": f"run_id IN ({OWN_RUNS})",
    "llm_calls": f"run_id IN ({OWN_RUNS})",
    "memory_items": f"{TENANT} = ANY(string_to_array(prefix, '.'))",
}


def upgrade() -> None:
    policies = dict(POLICIES)
    if op.get_bind().exec_driver_sql("SELECT to_regclass('memory_vectors')").scalar():
        policies["memory_vectors"] = POLICIES["memory_items"]  # absent without pgvector
    for table, predicate in policies.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY pgstore_tenant ON {table} "
            f"USING ({UNSCOPED} OR {predicate}) WITH CHECK ({UNSCOPED} OR {predicate})"
        )


def downgrade() -> None:
    for table in [*POLICIES, "memory_vectors"]:
        if not op.get_bind().exec_driver_sql(f"SELECT to_regclass('{table}')").scalar():
            continue
        op.execute(f"DROP POLICY IF EXISTS pgstore_tenant ON {table}")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
