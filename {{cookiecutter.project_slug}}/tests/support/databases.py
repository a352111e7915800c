"""Throw-away databases for the tests: a SQLite file, or a fresh PostgreSQL database created
next to the one TEST_DATABASE_URL names and dropped afterwards, so runs never see each
other's rows and leave the server as they found it."""

import os
import secrets
import uuid
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from app.core.config import load_settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
BACKEND = "postgresql" if TEST_DATABASE_URL else "sqlite"


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'test.db'}"


def _normalised_server_url() -> str:
    # The same normalisation the app applies (postgres:// -> postgresql+asyncpg://).
    return load_settings(database_url=TEST_DATABASE_URL, environment="test").database_url


async def create_postgres_database() -> str:
    server_url = make_url(_normalised_server_url())
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return server_url.set(database=name).render_as_string(hide_password=False)


def runtime_url(admin_url: str) -> str:
    """The URL of the app's runtime role for a test database: a role of its own (roles are
    cluster-wide, so concurrent suites never share one), created by the tests through
    `make db-setup`'s code (app/db/setup.py) and dropped with the database."""
    admin = make_url(admin_url)
    role = f"{admin.database}_app"
    url = admin.set(username=role, password=secrets.token_urlsafe(16))
    return url.render_as_string(hide_password=False)


async def drop_runtime_role(url: str) -> None:
    role = make_url(url).username
    admin = create_async_engine(make_url(_normalised_server_url()), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
    finally:
        await admin.dispose()


async def drop_postgres_database(url: str) -> None:
    database = make_url(url)
    admin = create_async_engine(make_url(_normalised_server_url()), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(
                text(f'DROP DATABASE IF EXISTS "{database.database}" WITH (FORCE)')
            )
    finally:
        await admin.dispose()
