"""pg_textsearch (BM25 keyword ranking for the memory store) when the server offers it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Created only when the server can: the extension is available, preloaded
(``shared_preload_libraries``, which it requires) and creatable by this role (superuser, or a
trusted extension). Otherwise nothing changes and keyword search ranks with ``ts_rank``. The
BM25 index itself is built at run time per text search configuration (``ix_dyn_`` prefix).
Downgrade leaves the extension: other objects of the host may use it.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CAN_CREATE = """
SELECT 1 FROM pg_available_extension_versions v
JOIN pg_available_extensions a ON a.name = v.name AND a.default_version = v.version
WHERE v.name = 'pg_textsearch'
  AND a.installed_version IS NULL
  AND 'pg_textsearch' = ANY(string_to_array(
        replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
  AND (v.trusted OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
"""


def upgrade() -> None:
    if op.get_bind().exec_driver_sql(CAN_CREATE).first() is not None:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_textsearch")


def downgrade() -> None:
    pass
