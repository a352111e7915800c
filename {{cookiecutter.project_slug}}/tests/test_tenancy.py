"""The safety net under the routes: a session bound to a tenant cannot see or write another
tenant's rows even when a query forgets its `where` clause. These run as the owner, which
row-level security does not restrict on PostgreSQL, so that they prove the ORM net alone
(the database's own layer: tests/test_row_level_security.py)."""

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.tenancy import ALL_TENANTS, CrossTenantWriteError, bind_tenant
from app.models import Item, User
from tests.support.helpers import Account


async def _seed(client: AsyncClient, *accounts: Account) -> None:
    for account in accounts:
        response = await client.post(
            "/api/v1/items", json={"title": "row"}, headers=account.headers
        )
        assert response.status_code == 201


async def test_unfiltered_queries_only_see_the_bound_tenant(
    admin_sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    app: FastAPI,
    owner: Account,
    rival: Account,
) -> None:
    await _seed(client, owner, rival)
    async with admin_sessions() as session:
        await bind_tenant(session, owner.tenant_id)
        items = (await session.scalars(select(Item))).all()
        users = (await session.scalars(select(User))).all()
        everyone = await session.scalar(
            select(func.count()).select_from(User).execution_options(**{ALL_TENANTS: True})
        )
    assert {item.tenant_id for item in items} == {owner.tenant_id}
    assert {user.tenant_id for user in users} == {owner.tenant_id}
    assert everyone == 2


async def test_bulk_update_and_delete_stay_in_the_bound_tenant(
    admin_sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    app: FastAPI,
    owner: Account,
    rival: Account,
) -> None:
    await _seed(client, owner, rival)
    async with admin_sessions() as session:
        await bind_tenant(session, owner.tenant_id)
        await session.execute(update(Item).values(title="changed"))
        await session.execute(delete(Item))
        await session.commit()
    response = await client.get("/api/v1/items", headers=rival.headers)
    assert [item["title"] for item in response.json()["items"]] == ["row"]


async def test_writing_into_another_tenant_is_refused(
    admin_sessions: async_sessionmaker[AsyncSession], app: FastAPI, owner: Account, rival: Account
) -> None:
    async with admin_sessions() as session:
        await bind_tenant(session, owner.tenant_id)
        session.add(Item(title="planted", tenant_id=rival.tenant_id))
        with pytest.raises(CrossTenantWriteError):
            await session.flush()
