"""The async engine and session factories, created per app (in the lifespan), never at import."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from app.core.config import Settings
from app.db.tenancy import RlsConnection, TenantSession, watch_tenant_bindings

# A pooled connection is replaced after this long, before a server, proxy or firewall that
# drops idle connections (often after an hour) can make a request find it dead.
POOL_RECYCLE_SECONDS = 30 * 60


def _enable_sqlite_foreign_keys(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # SQLite ignores FOREIGN KEY clauses (and so ON DELETE CASCADE) unless asked per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        engine = create_async_engine(settings.database_url)
        event.listen(engine.sync_engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    # No pre-ping: it cost three round trips per request (BEGIN, `;`, ROLLBACK). A connection
    # the server dropped fails its request with a 503 (app/api/errors.py), SQLAlchemy then
    # replaces every connection of the pool, and the client's retry succeeds.
    engine = create_async_engine(
        settings.database_url,
        # Sized for what one worker runs at once; no overflow, since an overflow connection
        # is closed when it is returned and a busy worker would open a new one every few
        # requests. Beyond the pool, requests wait (pool_timeout, 30 s) for a connection.
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_recycle=POOL_RECYCLE_SECONDS,
        # Binds each session to its tenant in the message that starts it (app/db/tenancy.py).
        connect_args={"connection_class": RlsConnection},
    )
    watch_tenant_bindings(engine)
    return engine


@dataclass(frozen=True)
class Sessions:
    """The app's two session factories over one engine and one pool.

    `writing`: every request but GET and HEAD. Its statements run in a transaction that the
    route commits, or that is rolled back when the session closes.
    `reading`: GET and HEAD, which change nothing. Each statement runs on its own
    (autocommit), without BEGIN and ROLLBACK around the request: two round trips fewer on
    PostgreSQL. Each statement sees what was committed when it started, as every statement
    of a READ COMMITTED transaction (PostgreSQL's default) would.
    """

    writing: async_sessionmaker[AsyncSession]
    reading: async_sessionmaker[AsyncSession]


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine,
        sync_session_class=TenantSession,
        expire_on_commit=False,
        autoflush=False,
    )


def create_sessions(engine: AsyncEngine) -> Sessions:
    reading_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return Sessions(
        writing=create_session_factory(engine),
        reading=create_session_factory(reading_engine),
    )


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session per request. Routes commit explicitly, before they answer: committing
    here, after the handler, could fail once the client was already told "201 Created".
    Whatever was not committed is rolled back when the session closes."""
    async with factory() as session:
        yield session
