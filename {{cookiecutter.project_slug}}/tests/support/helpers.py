"""Small actions the tests repeat: sign a tenant up, log in, invite a user."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.base import Base

PASSWORD = "correct horse battery staple"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class CallerClient(AsyncClient):
    """A client that stands for a caller in another process: it sends what the test gives it
    and nothing more. Its `send` is httpx's own, taken at import, before anything in this
    process instruments httpx (a tracing integration patches AsyncClient.send to add the
    process's own trace headers to every request, over the ones a test sets)."""

    send = AsyncClient.send


@asynccontextmanager
async def running(
    app: FastAPI, client_address: tuple[str, int] = ("127.0.0.1", 123)
) -> AsyncIterator[AsyncClient]:
    """The app with its lifespan running, and a client that gets what a real one would
    (raise_app_exceptions=False: a 500 is a response, not an exception in the test)."""
    async with app.router.lifespan_context(app):
        transport = ASGITransport(app=app, raise_app_exceptions=False, client=client_address)
        async with CallerClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def empty_database(engine: AsyncEngine) -> None:
    """Delete every row, children first (a property test empties it before each example),
    through an engine of the owner (`admin_engine`): row-level security would hide rows from
    the app's own role."""
    async with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


@dataclass
class Account:
    """A signed-up tenant owner, with what the tests need to act as them."""

    tenant_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    headers: dict[str, str]


async def login(client: AsyncClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def sign_up(client: AsyncClient, tenant_name: str = "Acme") -> Account:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    response = await client.post(
        "/api/v1/tenants",
        json={"tenant_name": tenant_name, "email": email, "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Account(
        tenant_id=uuid.UUID(body["tenant"]["id"]),
        user_id=uuid.UUID(body["owner"]["id"]),
        email=email,
        headers=await login(client, email),
    )


async def invite(client: AsyncClient, owner: Account, role: str = "member") -> Account:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    response = await client.post(
        "/api/v1/users",
        json={"email": email, "password": PASSWORD, "role": role},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return Account(
        tenant_id=owner.tenant_id,
        user_id=uuid.UUID(response.json()["id"]),
        email=email,
        headers=await login(client, email),
    )
