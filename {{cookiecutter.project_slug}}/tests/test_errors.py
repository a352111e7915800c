import uuid
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient

from app.core.config import Settings, SettingsError, load_settings
from app.main import create_app
from tests.support.helpers import Account, running


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


@pytest.mark.parametrize("method", ["OPTIONS", "PUT"])
async def test_a_405_names_every_method_the_path_serves(client: AsyncClient, method: str) -> None:
    # FastAPI makes a route per method, and Starlette's own 405 named only the first route's.
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, operations in paths.items():
        url = path.replace("{item_id}", str(uuid.uuid4()))
        response = await client.request(method, url)
        assert response.status_code == 405, path
        assert response.json() == {"detail": "Method Not Allowed"}
        allowed = set(response.headers["allow"].split(", "))
        # HEAD is served besides GET where a load balancer probes (/health), undocumented.
        assert allowed - {"HEAD"} == {name.upper() for name in operations}, path
    response = await client.put("/health")
    assert response.headers["allow"] == "GET, HEAD"


async def test_health_answers_head_probes(client: AsyncClient) -> None:
    response = await client.head("/health")
    assert response.status_code == 200


async def test_a_trailing_slash_is_not_redirected_to_the_host_header(client: AsyncClient) -> None:
    response = await client.get("/api/v1/items/", headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers


async def test_oversized_bodies_are_refused_with_413(
    client: AsyncClient, settings: Settings
) -> None:
    too_big = b"x" * (settings.max_request_body_bytes + 1)
    declared = await client.post(
        "/api/v1/tenants", content=too_big, headers={"Content-Type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json() == {"detail": "Request body too large"}

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(3):
            yield b" " * (settings.max_request_body_bytes // 2)

    streamed = await client.post(
        "/api/v1/tenants", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert streamed.json() == {"detail": "Request body too large"}


async def test_the_openapi_schema_carries_the_project_name(
    client: AsyncClient, settings: Settings
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == settings.project_name
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_the_openapi_schema_documents_the_error_answers_of_every_route(
    client: AsyncClient,
) -> None:
    # What tests/test_api_fuzz.py holds the running app to, checked on the schema itself.
    paths = (await client.get("/openapi.json")).json()["paths"]
    error_message = {"$ref": "#/components/schemas/ErrorMessage"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"503"} if path.startswith("/api/") else set()
            if operation.get("security"):
                expected.add("401")
            if "requestBody" in operation:
                expected |= {"400", "413", "422"}
            assert expected <= set(responses), (method, path)
            for status in set(responses) & {"400", "401", "403", "404", "409", "413"}:
                content = responses[status]["content"]["application/json"]
                assert content["schema"] == error_message, (method, path, status)
    assert "Retry-After" in paths["/api/v1/items"]["get"]["responses"]["503"]["headers"]


async def test_the_error_route_is_not_mounted_by_default(
    client: AsyncClient, owner: Account
) -> None:
    response = await client.get("/api/v1/error", headers=owner.headers)
    assert response.status_code == 404


async def test_the_error_route_fails_with_a_500_when_enabled(
    settings: Settings, owner: Account
) -> None:
    async with running(create_app(settings.model_copy(update={"error_route": True}))) as http:
        response = await http.get("/api/v1/error", headers=owner.headers)
        assert response.status_code == 500
        assert response.json()["detail"] == "Internal Server Error"
        assert (await http.get("/api/v1/error")).status_code == 401


def test_the_error_route_is_refused_in_production() -> None:
    with pytest.raises(SettingsError, match="ERROR_ROUTE must be off"):
        load_settings(environment="production", secret_key="x" * 40, error_route=True)
