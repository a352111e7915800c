import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import AsyncClient, Response

from app.core.config import Settings
from app.main import create_app
from tests.support.helpers import PASSWORD, Account, running, sign_up
from tests.support.outage import Outage, interruptible_database

# What each kind of route answers while the database is there.
SERVED = {"sign-up": 201, "login": 200, "me": 200, "list": 200, "create": 201}

# Nothing listens on port 1: connecting is refused at once.
UNREACHABLE_DATABASES = {
    "postgresql": "postgresql+asyncpg://nobody@127.0.0.1:1/nowhere",
    "sqlite": "sqlite+aiosqlite:////nonexistent-directory/app.db",
}


async def test_ready_when_the_database_answers(client: AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    assert (await client.head("/health/ready")).status_code == 200


@pytest.fixture(params=sorted(UNREACHABLE_DATABASES))
async def client_without_database(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[AsyncClient]:
    broken = settings.model_copy(update={"database_url": UNREACHABLE_DATABASES[request.param]})
    application = create_app(broken)
    async with running(application) as http:
        yield http


async def test_not_ready_but_alive_when_the_database_is_down(
    client_without_database: AsyncClient,
) -> None:
    response = await client_without_database.get("/health/ready")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}
    # Liveness: restarting the process would not bring the database back.
    alive = await client_without_database.get("/health")
    assert (alive.status_code, alive.json()) == (200, {"status": "ok"})


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


@pytest.fixture
async def app_with_interruptible_database(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[AsyncClient, Outage]]:
    """An app serving from a working database that the test can take away
    (tests/support/outage.py)."""
    async with interruptible_database(tmp_path) as (database_url, outage):
        application = create_app(settings.model_copy(update={"database_url": database_url}))
        async with running(application) as http:
            yield http, outage


async def _answers_of(http: AsyncClient, owner: Account) -> dict[str, Response]:
    """One request to each kind of route: public, authenticated, reading and writing."""
    return {
        "sign-up": await http.post(
            "/api/v1/tenants",
            json={
                "tenant_name": "Initech",
                "email": f"{uuid.uuid4()}@example.com",
                "password": PASSWORD,
            },
        ),
        "login": await http.post(
            "/api/v1/auth/token", data={"username": owner.email, "password": PASSWORD}
        ),
        "me": await http.get("/api/v1/users/me", headers=owner.headers),
        "list": await http.get("/api/v1/items", headers=owner.headers),
        "create": await http.post("/api/v1/items", json={"title": "x"}, headers=owner.headers),
    }


def _statuses(answers: dict[str, Response]) -> dict[str, int]:
    return {name: response.status_code for name, response in answers.items()}


async def test_a_database_lost_while_running_gives_503s_until_it_comes_back(
    app_with_interruptible_database: tuple[AsyncClient, Outage],
) -> None:
    http, outage = app_with_interruptible_database
    owner = await sign_up(http)
    assert (await http.get("/health/ready")).status_code == 200
    assert _statuses(await _answers_of(http, owner)) == SERVED

    with outage:
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "database": "unreachable"}
        assert (await http.get("/health")).status_code == 200
        for name, response in (await _answers_of(http, owner)).items():
            assert response.status_code == 503, (name, response.text)
            assert response.headers["retry-after"] == "5"
            assert response.json() == {"detail": "The database is unavailable; try again shortly"}

    assert (await http.get("/health/ready")).json() == {"status": "ok", "database": "ok"}
    assert _statuses(await _answers_of(http, owner)) == SERVED
    listed = await http.get("/api/v1/items", headers=owner.headers)
    assert [item["title"] for item in listed.json()["items"]] == ["x", "x"]  # nothing lost
