import asyncio
import os
import secrets
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.core import security
from app.core.config import Settings, load_settings
from app.db.session import create_session_factory
from app.db.setup import set_up
from app.main import create_app
from tests.support.databases import (
    BACKEND,
    create_postgres_database,
    drop_postgres_database,
    drop_runtime_role,
    runtime_url,
    sqlite_url,
)
from tests.support.helpers import Account, CallerClient, empty_database, sign_up

# Property tests run a small profile on every `make test` and >= 1,000 examples each under
# `make test-long` (HYPOTHESIS_PROFILE=long). No deadline: an example is a real HTTP exchange
# (and maybe a real database round trip), whose time says nothing about correctness.
_PROPERTY_CHECKS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "print_blob": True,
}
hypothesis_settings.register_profile("default", max_examples=60, **_PROPERTY_CHECKS)
hypothesis_settings.register_profile("long", max_examples=1000, **_PROPERTY_CHECKS)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
{%- if cookiecutter.include_sentry == "yes" %}


# Sentry seam: a developer's .env must not send test runs to a real project (the environment
# wins over .env); the Sentry tests set SENTRY_* for the apps they start.
os.environ["SENTRY_DSN"] = ""
{%- endif %}


def pytest_report_header() -> str:
    profile = hypothesis_settings.get_current_profile_name()
    return f"database backend: {BACKEND}; hypothesis profile: {profile}"


@pytest.fixture(scope="session")
async def database_urls(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[str, str]]:
    """(runtime, admin): on PostgreSQL the app's own role and the owner (the server's
    superuser of TEST_DATABASE_URL), as in production; on SQLite one file."""
    if BACKEND == "sqlite":
        url = sqlite_url(tmp_path_factory.mktemp("db"))
        yield url, url
        return
    admin = await create_postgres_database()
    runtime = runtime_url(admin)
    try:
        yield runtime, admin
    finally:
        await drop_postgres_database(admin)
        await drop_runtime_role(runtime)


@pytest.fixture(scope="session")
def database_url(database_urls: tuple[str, str]) -> str:
    return database_urls[0]


@pytest.fixture(scope="session")
def settings(database_urls: tuple[str, str]) -> Settings:
    runtime, admin = database_urls
    return load_settings(
        database_url=runtime,
        database_admin_url=admin,
        environment="test",
        secret_key=secrets.token_urlsafe(64),  # long enough for HS512 probes too
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    # What `make db-setup` does: the runtime role, the migrations, the grants.
    await asyncio.to_thread(set_up, settings, quiet=True)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def admin_engine(app: FastAPI, settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The owner's engine, for tests that read or change rows past the app (on PostgreSQL a
    superuser: row-level security does not apply to it)."""
    engine = create_async_engine(settings.admin_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def admin_sessions(admin_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(admin_engine)


@pytest.fixture(autouse=True)
async def _empty_tables(admin_engine: AsyncEngine) -> AsyncIterator[None]:
    yield
    await empty_database(admin_engine)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    # The app's lifespan already runs (session-wide); raise_app_exceptions=False as in running().
    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with CallerClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def owner(client: AsyncClient) -> Account:
    return await sign_up(client, "Acme")


@pytest.fixture
async def rival(client: AsyncClient) -> Account:
    """The owner of a second tenant, whose rows the first must never see."""
    return await sign_up(client, "Globex")


@pytest.fixture
def hashing_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the thread of every argon2 verification, known user or not (the real
    verification still runs)."""
    seen: list[int] = []
    for name in ("verify", "verify_and_update"):
        real = getattr(security.password_hash, name)

        def recording(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            seen.append(threading.get_ident())
            return _real(*args, **kwargs)

        monkeypatch.setattr(security.password_hash, name, recording)
    return seen
