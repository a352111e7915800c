"""`make db-setup` (`python -m app.db.setup`), idempotent: on PostgreSQL, create the runtime
role DATABASE_URL names if it is missing, migrate as the owner (DATABASE_ADMIN_URL), and grant
the runtime role exactly what the app needs: to connect, and to read and write the app's
tables' rows (not alembic_version, no DDL). On SQLite, or with one URL for both, it migrates.

The role is created LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE, with the password
of DATABASE_URL if it has one. An existing role is left as it is (the app warns at start-up
when it bypasses row-level security).
"""

import asyncio
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

import app.models  # noqa: F401 - registers every table on Base.metadata
from app.core.config import Settings, SettingsError, get_settings
from app.db.base import Base

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"
_ROLE_EXISTS = text("SELECT 1 FROM pg_roles WHERE rolname = :role")
_CREATE_ROLE = text(
    "SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', "
    "CAST(:role AS text)) || coalesce(format(' PASSWORD %L', CAST(:password AS text)), '')"
)


def runtime_role(settings: Settings) -> str | None:
    """The role to create and grant to, or None: SQLite, or the app runs as the owner."""
    if settings.is_sqlite:
        return None
    runtime, admin = make_url(settings.database_url), make_url(settings.admin_database_url)
    if runtime.username is None or runtime.username == admin.username:
        return None
    return runtime.username


async def _create_role(connection: AsyncConnection, role: str, password: str | None) -> bool:
    if await connection.scalar(_ROLE_EXISTS, {"role": role}):
        return False
    statement = await connection.scalar(_CREATE_ROLE, {"role": role, "password": password})
    try:
        await connection.execute(text(statement))
    except DBAPIError:
        # Roles are cluster-wide: another setup may have created it a moment ago.
        if not await connection.scalar(_ROLE_EXISTS, {"role": role}):
            raise
        return False
    return True


async def _grant(connection: AsyncConnection, role: str, database: str) -> None:
    quote = connection.dialect.identifier_preparer.quote_identifier
    await connection.execute(text(f"GRANT CONNECT ON DATABASE {quote(database)} TO {quote(role)}"))
    await connection.execute(text(f"GRANT USAGE ON SCHEMA public TO {quote(role)}"))
    for table in Base.metadata.sorted_tables:
        await connection.execute(
            text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {quote(table.name)} TO {quote(role)}")
        )


async def _as_admin(url: str, role: str, runtime: URL, *, grant: bool) -> bool:
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            if grant:
                await _grant(connection, role, runtime.database or "")
                return False
            return await _create_role(connection, role, runtime.password)
    finally:
        await engine.dispose()


def migrate(url: str, *, quiet: bool = False) -> None:
    config = Config(ALEMBIC_INI)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = not quiet  # quiet: leave logging alone (tests)
    command.upgrade(config, "head")


def set_up(settings: Settings, *, quiet: bool = False) -> list[str]:
    """Everything `make db-setup` does; returns what it did, one line each."""
    done = []
    role = runtime_role(settings)
    admin_url = settings.admin_database_url
    runtime = make_url(settings.database_url)
    if role is not None and asyncio.run(_as_admin(admin_url, role, runtime, grant=False)):
        done.append(f"created role {role}")
    migrate(admin_url, quiet=quiet)
    done.append("migrated to the latest revision")
    if role is not None:
        asyncio.run(_as_admin(admin_url, role, runtime, grant=True))
        done.append(f"granted {role} row access to the app's tables")
    return done


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.exit(str(exc))
    for line in set_up(settings):
        print(f"db-setup: {line}")


if __name__ == "__main__":
    main()
