import json
import re
from typing import Any

import pytest
from httpx import AsyncClient

from tests.support.helpers import PASSWORD

SIGNUP = {"tenant_name": "Acme", "email": "Owner@Example.com", "password": PASSWORD}


async def test_sign_up_creates_a_tenant_and_its_owner(client: AsyncClient) -> None:
    response = await client.post("/api/v1/tenants", json=SIGNUP | {"full_name": "Ada"})
    assert response.status_code == 201
    body = response.json()
    assert body["tenant"]["name"] == "Acme"
    assert body["owner"]["tenant_id"] == body["tenant"]["id"]
    assert body["owner"]["role"] == "owner"
    assert body["owner"]["email"] == "owner@example.com"  # stored in lower case
    assert "password" not in response.text
    assert "hashed" not in response.text


async def test_an_email_signs_up_once_whatever_its_case(client: AsyncClient) -> None:
    assert (await client.post("/api/v1/tenants", json=SIGNUP)).status_code == 201
    again = SIGNUP | {"email": "OWNER@example.COM", "tenant_name": "Other"}
    response = await client.post("/api/v1/tenants", json=again)
    assert response.status_code == 409
    assert response.json() == {"detail": "A user with this e-mail already exists"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param(SIGNUP | {"email": "not-an-email"}, id="bad-email"),
        pytest.param(SIGNUP | {"password": "short"}, id="short-password"),
        pytest.param(SIGNUP | {"password": "x" * 129}, id="huge-password"),
        pytest.param(SIGNUP | {"tenant_name": "   "}, id="blank-name"),
        pytest.param(SIGNUP | {"tenant_name": "x" * 101}, id="long-name"),
        pytest.param(SIGNUP | {"tenant_name": "nul\x00byte"}, id="nul-byte"),
        pytest.param(SIGNUP | {"tenant_name": 42}, id="wrong-type"),
        pytest.param(SIGNUP | {"role": "owner"}, id="unknown-field"),
        pytest.param([SIGNUP], id="array-not-object"),
    ],
)
async def test_malformed_sign_ups_get_422(client: AsyncClient, body: Any) -> None:
    response = await client.post("/api/v1/tenants", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


@pytest.mark.parametrize(
    "email",
    [
        "ada@example.com",
        "ada@example.test",  # special-use domains receive no mail: refused, and documented so
        "ada@mail.LOCALHOST",
        "ada@onion",  # a domain without a dot
        "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com",  # 254: the most
        "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com",
    ],
)
async def test_the_schema_tells_which_emails_are_taken(client: AsyncClient, email: str) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    documented = schemas["TenantSignup"]["properties"]["email"]
    valid = len(email) <= documented["maxLength"] and not re.search(
        documented["not"]["pattern"], email
    )
    response = await client.post("/api/v1/tenants", json=SIGNUP | {"email": email})
    assert response.status_code == (201 if valid else 422), response.text


async def test_a_422_never_echoes_what_was_sent(client: AsyncClient) -> None:
    body = SIGNUP | {"password": "hunter2"}  # too short: rejected, and must not come back
    response = await client.post("/api/v1/tenants", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
    assert "hunter2" not in response.text


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
async def test_non_finite_numbers_get_a_strictly_valid_json_422(
    client: AsyncClient, literal: bytes
) -> None:
    body = b'{"tenant_name": ' + literal + b', "email": "a@example.com", "password": "long enough"}'
    response = await client.post(
        "/api/v1/tenants", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    json.loads(response.text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


LONE_SURROGATE = b'{"tenant_name": "\\ud800", "email": "a@example.com", "password": "long enough"}'


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        pytest.param(LONE_SURROGATE, "application/json", 422, id="lone-surrogate"),
        pytest.param(b'{"tenant_name": ', "application/json", 422, id="truncated-json"),
        pytest.param(b"\xff\xfe\xfd", "application/json", 400, id="not-utf8"),
        pytest.param(b"tenant_name=Acme", "application/x-www-form-urlencoded", 422, id="form"),
    ],
)
async def test_undecodable_bodies_get_4xx_json(
    client: AsyncClient, content: bytes, content_type: str, expected: int
) -> None:
    response = await client.post(
        "/api/v1/tenants", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == expected
    assert "detail" in response.json()
