"""memory: one function sweeps every tenant's expired items

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

The TTL sweeper runs in a background thread that acts for no tenant, so under row-level
security its ``DELETE`` saw only shared rows: tenants' expired items stayed on disk for ever
(hidden from reads, never reclaimed). ``pgstore_sweep_expired_memories(chunk)`` runs as the
tables' owner (``SECURITY DEFINER``, which row-level security does not bind) and deletes up
to ``chunk`` expired items of any owner, skipping rows another transaction holds; vectors go
with their items (``ON DELETE CASCADE``).

It can do nothing but delete items whose TTL has run out, which every reader already
treats as gone, so any role may call it. Its ``search_path`` is pinned to the schema it was
created in (then ``pg_temp``), as PostgreSQL's advice for definer functions asks.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = op.get_bind().execute(sa.text("SELECT current_schema()")).scalar_one()
    pinned = '"' + str(schema).replace('"', '""') + '"'
    op.execute(
        f"""
CREATE FUNCTION pgstore_sweep_expired_memories(chunk integer) RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = {pinned}, pg_temp AS $$
  WITH d AS (
    DELETE FROM memory_items WHERE ctid = ANY(ARRAY(
      SELECT ctid FROM memory_items WHERE expires_at IS NOT NULL AND expires_at <= now()
      LIMIT chunk FOR UPDATE SKIP LOCKED))
    RETURNING 1)
  SELECT count(*)::integer FROM d
$$"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION pgstore_sweep_expired_memories(integer)")
