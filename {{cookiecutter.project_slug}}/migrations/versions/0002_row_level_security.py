"""row-level security on PostgreSQL

Every tenant-owned table (and `tenants` itself) admits only the rows of the tenant bound to
the transaction (`app.tenant_id`, set by app/db/tenancy.py), for reading (USING) and writing
(WITH CHECK). FORCE makes the tables' owner subject to it too; superusers and BYPASSRLS roles
never are, which is why the app runs as a separate role (`make db-setup`). One narrow
cross-tenant path: `users` shows, for reading only, the one row whose e-mail the transaction
names in `app.login_email` (sign-up, login and "is this e-mail taken"). SQLite: nothing to do.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out, not imported from the app: a migration must mean the same thing forever.
BOUND_TENANT = "CAST(NULLIF(current_setting('app.tenant_id', true), '') AS uuid)"
TENANT_COLUMN = {"tenants": "id", "users": "tenant_id", "items": "tenant_id"}


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _on_postgresql():
        return
    for table, column in TENANT_COLUMN.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING ({column} = {BOUND_TENANT}) WITH CHECK ({column} = {BOUND_TENANT})"
        )
    op.execute(
        "CREATE POLICY login_lookup ON users FOR SELECT "
        "USING (email = current_setting('app.login_email', true))"
    )


def downgrade() -> None:
    if not _on_postgresql():
        return
    op.execute("DROP POLICY login_lookup ON users")
    for table in reversed(TENANT_COLUMN):
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
