"""Tenant isolation under the routes' own filters: the ORM net, and row-level security.

Once a request's session is bound to a tenant (`bind_tenant`, done by the auth dependency),
every ORM SELECT, UPDATE and DELETE touching a `TenantScoped` model gets
`tenant_id = <caller's tenant>` added by SQLAlchemy itself, and a flush that would write a
row into another tenant raises. A route that forgets its `where` clause still cannot leak.

On PostgreSQL the database enforces it too (docs/adr/0001-tenant-isolation.md): the row-level
security policies of migrations/versions/0002 compare each row with the setting
`app.tenant_id`, which is set for every session, bound or not, before its first statement:

- In a transaction (every request but GET and HEAD), `set_config(…, true)`: local to the
  transaction, so it ends with it. It rides in the same message as the transaction's `BEGIN`
  (see `RlsConnection`): it costs no round trip.
- Reads run without a transaction (app/db/session.py), so the setting is the connection's:
  `set_config(…, false)`, sent only when the connection holds another tenant than the one
  wanted. A pooled connection keeps it after its request, so the pool remembers what each
  connection holds, and every statement on a connection that no session claimed (a plain
  `engine.connect()`) first clears it: no statement runs under a tenant its code did not ask
  for. A worker serving one tenant sends it once per connection, not once per request.
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
from sqlalchemy.pool import ConnectionPoolEntry

from app.db.base import Base

logger = logging.getLogger(__name__)

_TENANT_KEY = "tenant_id"
# Execution option for the rare query that must look across tenants (e.g. "is this e-mail
# taken anywhere?"); grep for it when auditing isolation. On PostgreSQL it lifts the ORM net
# only: row-level security still applies (see find_user_by_email in app/services/users.py).
ALL_TENANTS = "all_tenants"
# The settings the policies of migrations/versions/0002 read.
TENANT_SETTING = "app.tenant_id"
LOGIN_EMAIL_SETTING = "app.login_email"


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

    _begin_bound_to: str | None = None

    def bind_next_transaction(self, tenant: str | None) -> None:
        """`tenant`: a tenant id, "" for none, or None to leave the setting alone."""
        self._begin_bound_to = tenant

    # The signature of asyncpg.Connection.execute, timeout included.
    async def execute(
        self,
        query: str,
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> str:
        tenant, self._begin_bound_to = self._begin_bound_to, None
        if tenant is not None and not args and query.startswith("BEGIN"):
            # asyncpg's Transaction.start() sends `BEGIN …;` as a simple query, which may hold
            # several statements. The tenant is str() of a uuid.UUID (hex and dashes) or "":
            # safe as a literal.
            query = f"{query} {_set_tenant_sql(tenant, local=True)};"
        status: str = await super().execute(query, *args, timeout=timeout)
        return status


def _set_tenant_sql(tenant: str, *, local: bool) -> str:
    return f"SELECT set_config('{TENANT_SETTING}', '{tenant}', {str(local).lower()})"


def _tenant_text(tenant_id: uuid.UUID | None) -> str:
    return "" if tenant_id is None else str(uuid.UUID(str(tenant_id)))


# Kept in each pooled connection's `info`, which lives as long as the connection:
_HELD = "rls_held_tenant"  # what the connection's own app.tenant_id holds ("" for none)
_CLAIMED = "rls_claimed"  # this checkout's session set what it needs (reset at checkout)


def _driver(connection: Connection) -> RlsConnection | None:
    # Not isinstance(): asyncpg's metaclass answers True for every asyncpg connection.
    driver = connection.connection.driver_connection
    return driver if RlsConnection in type(driver).__mro__ else None


def _hold(connection: Connection, tenant: str) -> None:
    """Make the connection's own setting `tenant`. Only outside a transaction, where it
    commits at once, so that what the pool remembers stays true."""
    info = connection.connection.info
    if info.get(_HELD, "") == tenant:
        return
    connection.exec_driver_sql(_set_tenant_sql(tenant, local=False))
    info[_HELD] = tenant


def _reads_without_transaction(connection: Connection) -> bool:
    return connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


def _bind_connection(connection: Connection, tenant: str) -> None:
    """Bind a connection a session already uses (its statements have begun)."""
    if _reads_without_transaction(connection):
        _hold(connection, tenant)
    else:
        connection.exec_driver_sql(_set_tenant_sql(tenant, local=True))


async def bind_tenant(session: AsyncSession, tenant_id: uuid.UUID) -> None:
    """Bind the session to a tenant: the ORM net, and on PostgreSQL row-level security for
    every later statement of the session. Free before the session's first query (it rides on
    what the session sends first); one `set_config` round trip once it has begun."""
    sync_session = session.sync_session
    sync_session.info[_TENANT_KEY] = tenant_id
    if sync_session.in_transaction() and session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        await connection.run_sync(_bind_connection, _tenant_text(tenant_id))


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
def _bind_session_connection(
    session: Session, _transaction: SessionTransaction, connection: Connection
) -> None:
    # Runs when the session takes its connection, before its first statement (and before
    # asyncpg's lazy `BEGIN`). An unbound session asks for "": no tenant, whatever the
    # connection's last user held.
    driver = _driver(connection)
    if driver is None:
        return
    connection.connection.info[_CLAIMED] = True
    tenant = _tenant_text(bound_tenant(session))
    if _reads_without_transaction(connection):
        _hold(connection, tenant)
    elif driver.is_in_transaction():  # joined a transaction its caller began
        connection.exec_driver_sql(_set_tenant_sql(tenant, local=True))
    elif tenant or connection.connection.info.get(_HELD, ""):
        driver.bind_next_transaction(tenant)


def _unclaimed_on_checkout(_dbapi: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
    record.info[_CLAIMED] = False


def _forget_pending_binding(dbapi_connection: Any, *_: Any) -> None:
    # Pool `checkin`: a binding no `BEGIN` consumed must not reach the next user.
    driver = getattr(dbapi_connection, "driver_connection", None)
    if driver is not None and RlsConnection in type(driver).__mro__:
        driver.bind_next_transaction(None)


# The net under code that reaches the database past the sessions (`engine.connect()`): its
# statements run under no tenant, whatever the connection's last user held.


def _clear_unclaimed_transaction(connection: Connection) -> None:
    # Engine `begin`: a transaction's own "" rides on its BEGIN, as a session's tenant does.
    info = connection.connection.info
    driver = _driver(connection)
    if driver is None or info.get(_CLAIMED, True) or not info.get(_HELD, ""):
        return
    if not _reads_without_transaction(connection):
        driver.bind_next_transaction("")


def _clear_unclaimed_reads(connection: Connection, *_: Any) -> None:
    # Engine `before_cursor_execute`, for connections outside a transaction.
    info = connection.connection.info
    if info.get(_CLAIMED, True) or not _reads_without_transaction(connection):
        return
    info[_CLAIMED] = True  # before _hold, whose own statement comes back through here
    if _driver(connection) is not None:
        _hold(connection, "")


def watch_tenant_bindings(engine: AsyncEngine) -> None:
    """The pool and engine events above, on a PostgreSQL engine created with
    `connect_args={"connection_class": RlsConnection}` (app/db/session.py)."""
    event.listen(engine.sync_engine.pool, "checkout", _unclaimed_on_checkout)
    event.listen(engine.sync_engine.pool, "checkin", _forget_pending_binding)
    event.listen(engine.sync_engine, "begin", _clear_unclaimed_transaction)
    event.listen(engine.sync_engine, "before_cursor_execute", _clear_unclaimed_reads)


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
