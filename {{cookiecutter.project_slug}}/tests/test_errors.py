from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from app.core.config import Settings
from app.main import create_app
from tests.helpers import running


class BoomError(Exception):
    pass


@pytest.fixture
async def failing_client(settings: Settings) -> AsyncIterator[AsyncClient]:
    application = create_app(settings)

    async def explode() -> None:
        raise BoomError("kaboom")

    application.add_api_route("/boom", explode)
    async with running(application) as http:
        yield http


async def test_an_unhandled_error_answers_500_json_without_details(
    failing_client: AsyncClient,
) -> None:
    response = await failing_client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "kaboom" not in response.text


async def test_unknown_routes_and_methods_answer_json(client: AsyncClient) -> None:
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    wrong = await client.put("/health")
    assert wrong.status_code == 405
    assert wrong.json() == {"detail": "Method Not Allowed"}
