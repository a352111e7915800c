"""Tenant isolation under the routes' own filters: the ORM net, and row-level security.

Once a request's session is bound to a tenant (`bind_tenant`, done by the auth dependency),
every ORM SELECT, UPDATE and DELETE touching a `TenantScoped` model gets
`tenant_id = <caller's tenant>` added by SQLAlchemy itself, and a flush that would write a
row into another tenant raises. A route that forgets its `where` clause still cannot leak.

On PostgreSQL the database enforces it too (docs/adr/0001-tenant-isolation.md): every
transaction of a bound session starts with `set_config('app.tenant_id', <tenant>, true)`,
which the row-level security policies of migrations/versions/0002 compare each row with. The
setting is local to the transaction, so a pooled connection never carries it into the next
one. It rides in the same message as the transaction's `BEGIN` (see `RlsConnection`): binding
costs no round trip.
"""

import asyncio
import logging
import uuid
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import ForeignKey, Uuid, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    SessionTransaction,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)

from app.db.base import Base

logger = logging.getLogger(__name__)

_TENANT_KEY = "tenant_id"
# Execution option for the rare query that must look across tenants (e.g. "is this e-mail
# taken anywhere?"); grep for it when auditing isolation. On PostgreSQL it lifts the ORM net
# only: row-level security still applies (see find_user_by_email in app/services/users.py).
ALL_TENANTS = "all_tenants"
# The per-transaction settings the policies of migrations/versions/0002 read.
TENANT_SETTING = "app.tenant_id"
LOGIN_EMAIL_SETTING = "app.login_email"
_BIND_NOW = text("SELECT set_config('app.tenant_id', :tenant_id, true)")


class CrossTenantWriteError(RuntimeError):
    """A bug, not bad input: code tried to write a row into a tenant other than the caller's."""


class TenantScoped:
    """Mixin for rows owned by one tenant."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - SQLAlchemy's declared_attr signature
        return mapped_column(
            Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False
        )


class TenantSession(Session):
    """The sync session class behind every AsyncSession the app creates."""


class RlsConnection(asyncpg.Connection):  # type: ignore[misc]
    """The asyncpg connection class of PostgreSQL engines (`connection_class`): it starts the
    next transaction already bound to a tenant, `BEGIN` and `set_config` in one message."""

    _begin_bound_to: uuid.UUID | None = None

    def bind_next_transaction(self, tenant_id: uuid.UUID | None) -> None:
        self._begin_bound_to = tenant_id

    # The signature of asyncpg.Connection.execute, timeout included.
    async def execute(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        tenant_id, self._begin_bound_to = self._begin_bound_to, None
        if tenant_id is not None and not args and query.startswith("BEGIN"):
            # asyncpg's Transaction.start() sends `BEGIN …;` as a simple query, which may hold
            # several statements. str() of a uuid.UUID is hex and dashes: safe as a literal.
            query = f"{query} SELECT set_config('{TENANT_SETTING}', '{tenant_id}', true);"
        status: str = await super().execute(query, *args, timeout=timeout)
        return status


def _driver_connection(connection: Connection) -> RlsConnection | None:
    # Not isinstance(): asyncpg's metaclass answers True for every asyncpg connection.
    driver = connection.connection.driver_connection
    return driver if RlsConnection in type(driver).__mro__ else None


async def bind_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Bind the session to a tenant: the ORM net, and on PostgreSQL row-level security for
    this transaction and every later one of the session. Free before the session's first
    query; one `set_config` round trip when its transaction has already begun."""
    sync_session = session.sync_session
    sync_session.info[_TENANT_KEY] = tenant_id
    if sync_session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        await session.execute(_BIND_NOW, {"tenant_id": str(tenant_id)})


def bound_tenant(session: Session) -> uuid.UUID | None:
    return session.info.get(_TENANT_KEY)


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_queries_to_tenant(state: ORMExecuteState) -> None:
    tenant_id = bound_tenant(state.session)
    if tenant_id is None or state.is_column_load or state.is_relationship_load:
        return
    if state.execution_options.get(ALL_TENANTS, False):
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(
                TenantScoped,
                lambda cls: cls.tenant_id == tenant_id,
                include_aliases=True,
            )
        )


@event.listens_for(TenantSession, "after_begin")
def _bind_transaction(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    # Runs when the session's transaction takes its connection, before asyncpg's lazy `BEGIN`.
    driver = _driver_connection(connection)
    if driver is None:
        return
    tenant_id = bound_tenant(session)
    if not driver.is_in_transaction():
        driver.bind_next_transaction(tenant_id)  # None: clears what an earlier user left
    elif tenant_id is not None:  # a connection already in a transaction (joined by the caller)
        connection.execute(_BIND_NOW, {"tenant_id": str(tenant_id)})


def forget_pending_binding(dbapi_connection: Any, *_: Any) -> None:
    """Pool `checkin` listener: a binding no `BEGIN` consumed must not reach the next user."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and RlsConnection in type(driver).__mro__:
        driver.bind_next_transaction(None)


@event.listens_for(TenantSession, "before_flush")
def _refuse_cross_tenant_writes(session: Session, _context: Any, _instances: Any) -> None:
    tenant_id = bound_tenant(session)
    if tenant_id is None:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, TenantScoped) and obj.tenant_id != tenant_id:
            raise CrossTenantWriteError(f"{type(obj).__name__} belongs to another tenant")


def isolated_tables() -> list[str]:
    """The tables row-level security guards: `tenants` and every TenantScoped table."""
    return [
        table.name
        for table in Base.metadata.sorted_tables
        if table.name == "tenants" or _TENANT_KEY in table.c
    ]


_ISOLATION_CHECK = text(
    """
    SELECT r.rolname, r.rolsuper, r.rolbypassrls,
           array(SELECT c.relname::text FROM pg_class c
                 WHERE c.relname = ANY(:tables) AND c.relkind = 'r'
                   AND pg_table_is_visible(c.oid)
                   AND NOT (c.relrowsecurity
                            AND (c.relforcerowsecurity
                                 OR NOT pg_has_role(r.oid, c.relowner, 'USAGE')))
                 ORDER BY c.relname) AS open_tables
    FROM pg_roles r WHERE r.rolname = current_user
    """
)


async def isolation_gaps(engine: AsyncEngine) -> list[str]:
    """Why the database would not enforce tenant isolation for the app's role (empty: it
    does). A superuser, a BYPASSRLS role and an owner of tables without FORCE all bypass it."""
    async with engine.connect() as connection:
        row = (await connection.execute(_ISOLATION_CHECK, {"tables": isolated_tables()})).one()
    gaps = []
    if row.rolsuper:
        gaps.append(f"role {row.rolname!r} is a superuser")
    if row.rolbypassrls:
        gaps.append(f"role {row.rolname!r} has BYPASSRLS")
    if row.open_tables:
        gaps.append(f"no enforced row-level security on {', '.join(row.open_tables)}")
    return gaps


_CHECK_TIMEOUT = 5.0  # seconds


async def warn_unless_isolation_enforced(engine: AsyncEngine) -> None:
    """One start-up warning when PostgreSQL would not enforce tenant isolation."""
    try:
        gaps = await asyncio.wait_for(isolation_gaps(engine), timeout=_CHECK_TIMEOUT)
    except Exception as exc:  # start-up must not depend on it: the database may be down
        logger.warning("Could not check tenant isolation in the database (%s)", type(exc).__name__)
        return
    if gaps:
        logger.warning(
            "The database does not enforce tenant isolation (%s); only the app's own layers "
            "do. Run the app as the runtime role `make db-setup` creates (README, PostgreSQL)",
            "; ".join(gaps),
        )
