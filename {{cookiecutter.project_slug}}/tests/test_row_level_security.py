"""The third layer, on PostgreSQL: row-level security. What the ORM net cannot catch (raw SQL,
Core statements on a table, a connection of another process) the database itself refuses, and
a pooled connection never carries one tenant into the next, whether its last user wrote (in a
transaction), read (without one) or went past the sessions."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from httpx import AsyncClient
from hypothesis import given, note, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.api.deps import CurrentUser, SessionDep
from app.core.config import Settings
from app.db.base import Base, utc_now
from app.db.setup import set_up
from app.db.tenancy import bind_tenant, isolated_tables, warn_unless_isolation_enforced
from app.main import create_app
from tests.support.databases import BACKEND
from tests.support.helpers import Account, running, sign_up

pytestmark = pytest.mark.skipif(BACKEND != "postgresql", reason="row-level security: PostgreSQL")

ITEMS = Base.metadata.tables["items"]


def _probed_app(settings: Settings) -> FastAPI:
    """The app with two extra routes that do what no route should: raw SQL without a filter."""
    app = create_app(settings)

    async def bound(user: CurrentUser, session: SessionDep) -> dict[str, Any]:
        rows = (await session.execute(text("SELECT tenant_id FROM items"))).scalars().all()
        changed = await session.execute(update(ITEMS).values(title=f"by {user.tenant_id}"))
        await session.commit()
        return {"seen": sorted({str(r) for r in rows}), "changed": changed.rowcount}  # type: ignore[attr-defined]

    async def bound_read(user: CurrentUser, session: SessionDep) -> dict[str, Any]:
        rows = (await session.execute(text("SELECT tenant_id FROM items"))).scalars().all()
        return {"seen": sorted({str(r) for r in rows}), "changed": len(rows)}

    async def unbound(session: SessionDep) -> dict[str, Any]:
        setting = await session.scalar(text("SELECT current_setting('app.tenant_id', true)"))
        count = await session.scalar(text("SELECT count(*) FROM items"))
        return {"setting": setting or None, "count": count}

    async def past_the_sessions(request: Request) -> dict[str, Any]:
        async with request.app.state.engine.connect() as connection:
            setting = await connection.scalar(text("SELECT current_setting('app.tenant_id', true)"))
            count = await connection.scalar(text("SELECT count(*) FROM items"))
        return {"setting": setting or None, "count": count}

    app.add_api_route("/probe/bound", bound, methods=["POST"])
    app.add_api_route("/probe/bound", bound_read, methods=["GET"])
    app.add_api_route("/probe/unbound", unbound, methods=["GET"])
    app.add_api_route("/probe/raw", past_the_sessions, methods=["GET"])
    return app


async def _seed(client: AsyncClient, account: Account, count: int = 1) -> None:
    for _ in range(count):
        answer = await client.post("/api/v1/items", json={"title": "row"}, headers=account.headers)
        assert answer.status_code == 201, answer.text


@pytest.fixture
async def runtime_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """A connection as the runtime role that is not the app's: another process, a script."""
    engine = create_async_engine(settings.database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_raw_sql_and_core_update_in_a_bound_request_touch_only_its_tenant(
    settings: Settings, admin_engine: AsyncEngine
) -> None:
    async with running(_probed_app(settings)) as client:
        first, second = await sign_up(client, "Acme"), await sign_up(client, "Globex")
        await _seed(client, first, 2)
        await _seed(client, second, 3)
        answer = await client.post("/probe/bound", headers=first.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"seen": [str(first.tenant_id)], "changed": 2}
    async with admin_engine.connect() as connection:
        titles = (await connection.execute(select(ITEMS.c.tenant_id, ITEMS.c.title))).all()
    assert sorted((str(t), title) for t, title in titles) == sorted(
        [(str(first.tenant_id), f"by {first.tenant_id}")] * 2 + [(str(second.tenant_id), "row")] * 3
    )


async def test_the_runtime_role_with_no_tenant_bound_sees_no_rows(
    client: AsyncClient, runtime_engine: AsyncEngine, admin_engine: AsyncEngine, owner: Account
) -> None:
    await _seed(client, owner)
    async with runtime_engine.connect() as connection:
        for table in isolated_tables():
            assert await connection.scalar(text(f"SELECT count(*) FROM {table}")) == 0  # noqa: S608
            assert (await connection.execute(text(f"DELETE FROM {table}"))).rowcount == 0  # noqa: S608
    async with admin_engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM items")) == 1


async def test_writing_a_row_of_another_tenant_is_refused_by_the_database(
    runtime_engine: AsyncEngine, owner: Account, rival: Account
) -> None:
    row = {"id": uuid.uuid4(), "title": "planted", "tenant_id": rival.tenant_id}
    async with runtime_engine.connect() as connection:
        await connection.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(owner.tenant_id)}
        )
        with pytest.raises(DBAPIError, match="row-level security"):
            await connection.execute(
                insert(ITEMS).values(**row, updated_at=utc_now(), created_at=utc_now())
            )
    async with runtime_engine.begin() as connection:
        await connection.execute(
            text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(owner.tenant_id)}
        )
        await connection.execute(
            insert(ITEMS).values(
                **row | {"tenant_id": owner.tenant_id}, updated_at=utc_now(), created_at=utc_now()
            )
        )
        with pytest.raises(DBAPIError, match="row-level security"):
            await connection.execute(update(ITEMS).values(tenant_id=rival.tenant_id))


async def test_every_tenant_table_is_forced_under_a_policy(runtime_engine: AsyncEngine) -> None:
    query = text(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
        " (SELECT count(*) FROM pg_policies p WHERE p.tablename = c.relname"
        "  AND p.policyname = 'tenant_isolation' AND p.cmd = 'ALL'"
        "  AND p.qual IS NOT NULL AND p.with_check IS NOT NULL)"
        " FROM pg_class c WHERE c.relname = ANY(:tables) AND pg_table_is_visible(c.oid)"
    )
    async with runtime_engine.connect() as connection:
        rows = (await connection.execute(query, {"tables": isolated_tables()})).all()
    assert sorted(rows) == sorted((table, True, True, 1) for table in isolated_tables())


@pytest.mark.parametrize("kind", ["writing", "reading"])
async def test_a_session_bound_late_is_bound_at_once(
    app: FastAPI, owner: Account, kind: str
) -> None:
    async with getattr(app.state.sessions, kind)() as session:
        assert await session.scalar(text("SELECT count(*) FROM users")) == 0
        await bind_tenant(session, owner.tenant_id)  # after its first statement: one set_config
        assert await session.scalar(text("SELECT count(*) FROM users")) == 1


async def test_db_setup_is_idempotent(settings: Settings) -> None:
    done = await asyncio.to_thread(set_up, settings, quiet=True)
    assert not any(line.startswith("created role") for line in done)


@pytest.fixture
def isolation_warnings() -> Iterator[list[str]]:
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("app.db.tenancy")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


async def test_start_up_warns_when_the_database_does_not_enforce_isolation(
    runtime_engine: AsyncEngine, admin_engine: AsyncEngine, isolation_warnings: list[str]
) -> None:
    await warn_unless_isolation_enforced(runtime_engine)
    assert isolation_warnings == []
    await warn_unless_isolation_enforced(admin_engine)  # the test server's superuser
    assert len(isolation_warnings) == 1
    assert "does not enforce tenant isolation" in isolation_warnings[0]
    assert "superuser" in isolation_warnings[0]


@pytest.fixture(params=[1, 2], ids=["pool-of-1", "pool-of-2"])
async def interleaving(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[AsyncClient, list[Account]]]:
    """The probed app over a pool of one or two connections (no overflow), and three tenants
    holding one, two and three items."""
    pool = {"database_pool_size": request.param, "database_max_overflow": 0}
    async with running(_probed_app(settings.model_copy(update=pool))) as client:
        accounts = [await sign_up(client, f"Tenant {n}") for n in range(3)]
        for n, account in enumerate(accounts):
            await _seed(client, account, n + 1)
        yield client, accounts


# Requests of several tenants, writing or reading, and requests bound to none, through a
# session or past it, interleaved over that pool: each must see exactly its own tenant's rows
# (raw SQL, past the ORM net), and an unbound one none at all, whatever tenant the connection
# served before.
_who = st.sampled_from([0, 1, 2, None])
_requests = st.tuples(_who, st.booleans())  # (tenant or none, through a session)
_waves = st.lists(st.lists(_requests, min_size=2, max_size=12), max_size=4)


@settings(max_examples=max(10, settings().max_examples // 3))
@given(waves=_waves)
async def test_no_tenant_is_carried_over_on_pooled_connections(
    interleaving: tuple[AsyncClient, list[Account]],
    waves: list[list[tuple[int | None, bool]]],
) -> None:
    client, accounts = interleaving

    def request(who: int | None, writing_or_session: bool) -> Any:
        if who is None:
            return client.get("/probe/unbound" if writing_or_session else "/probe/raw")
        method = client.post if writing_or_session else client.get
        return method("/probe/bound", headers=accounts[who].headers)

    for wave in waves:
        note(repr(wave))
        answers = await asyncio.gather(*(request(*each) for each in wave))
        for (who, _), answer in zip(wave, answers, strict=True):
            assert answer.status_code == 200, answer.text
            if who is None:
                assert answer.json() == {"setting": None, "count": 0}
            else:
                assert answer.json() == {"seen": [str(accounts[who].tenant_id)], "changed": who + 1}
