from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.helpers import running

# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE_DATABASES = {
    "postgresql": "postgresql+asyncpg://nobody@127.0.0.1:1/nowhere",
    "sqlite": "sqlite+aiosqlite:////nonexistent-directory/app.db",
}


async def test_health_is_ok_when_the_database_answers(client: AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


@pytest.fixture(params=sorted(UNREACHABLE_DATABASES))
async def client_without_database(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[AsyncClient]:
    broken = settings.model_copy(update={"database_url": UNREACHABLE_DATABASES[request.param]})
    application = create_app(broken)
    async with running(application) as http:
        yield http


async def test_health_answers_503_when_the_database_is_down(
    client_without_database: AsyncClient,
) -> None:
    response = await client_without_database.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


async def test_routes_answer_503_json_when_the_database_is_down(
    client_without_database: AsyncClient,
) -> None:
    response = await client_without_database.post(
        "/api/v1/tenants",
        json={"tenant_name": "Acme", "email": "a@example.com", "password": "long enough"},
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "unavailable" in response.json()["detail"]
