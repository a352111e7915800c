"""The async engine and session factory, created per app (in the lifespan), never at import."""

from collections.abc import AsyncIterator

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
from app.db.tenancy import RlsConnection, TenantSession, forget_pending_binding


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
    engine = create_async_engine(
        settings.database_url,
        pool_pre_ping=True,  # survive a database restart without a burst of errors
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        # Starts each transaction of a tenant's session bound to it (app/db/tenancy.py).
        connect_args={"connection_class": RlsConnection},
    )
    event.listen(engine.sync_engine.pool, "checkin", forget_pending_binding)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine,
        sync_session_class=TenantSession,
        expire_on_commit=False,
        autoflush=False,
    )


async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One session per request. Routes commit explicitly, before they answer: committing
    here, after the handler, could fail once the client was already told "201 Created".
    Whatever was not committed is rolled back when the session closes."""
    async with factory() as session:
        yield session
