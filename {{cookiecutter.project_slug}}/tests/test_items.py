import re
import uuid

import pytest
from httpx import AsyncClient

from tests.support.helpers import Account, invite


async def _create(client: AsyncClient, account: Account, title: str = "Ledger") -> dict[str, str]:
    response = await client.post(
        "/api/v1/items", json={"title": title, "description": "Q3"}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


async def test_item_lifecycle(client: AsyncClient, owner: Account) -> None:
    item = await _create(client, owner)
    assert item["tenant_id"] == str(owner.tenant_id)
    assert item["owner_id"] == str(owner.user_id)
    assert item["updated_at"] == item["created_at"]
    url = f"/api/v1/items/{item['id']}"

    assert (await client.get(url, headers=owner.headers)).json() == item

    patched = await client.patch(url, json={"title": "Ledger 2"}, headers=owner.headers)
    assert patched.status_code == 200
    assert patched.json()["title"] == "Ledger 2"
    assert patched.json()["description"] == "Q3"  # untouched: partial update
    assert patched.json()["updated_at"] > item["updated_at"]
    assert patched.json()["created_at"] == item["created_at"]

    cleared = await client.patch(url, json={"description": None}, headers=owner.headers)
    assert cleared.json()["description"] is None

    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404


async def test_members_share_their_tenants_items(client: AsyncClient, owner: Account) -> None:
    item = await _create(client, owner)
    member = await invite(client, owner)
    response = await client.get(f"/api/v1/items/{item['id']}", headers=member.headers)
    assert response.status_code == 200


async def test_list_is_scoped_to_the_tenant_and_paginated(
    client: AsyncClient, owner: Account, rival: Account
) -> None:
    for title in ("a", "b", "c"):
        await _create(client, owner, title)
    await _create(client, rival, "rival's")
    response = await client.get("/api/v1/items?limit=2", headers=owner.headers)
    body = response.json()
    assert body["total"] == 3
    assert len(body["items"]) == 2
    assert all(item["tenant_id"] == str(owner.tenant_id) for item in body["items"])


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_another_tenants_item_is_indistinguishable_from_a_missing_one(
    client: AsyncClient, owner: Account, rival: Account, method: str
) -> None:
    theirs = await _create(client, rival, "secret plans")
    body = {"title": "mine now"} if method == "PATCH" else None
    foreign = await client.request(
        method, f"/api/v1/items/{theirs['id']}", json=body, headers=owner.headers
    )
    missing = await client.request(
        method, f"/api/v1/items/{uuid.uuid4()}", json=body, headers=owner.headers
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {"detail": "Item not found"}
    # ...and the rival's item is untouched.
    still = await client.get(f"/api/v1/items/{theirs['id']}", headers=rival.headers)
    assert still.json()["title"] == "secret plans"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("GET", "/api/v1/items/not-a-uuid", None, id="bad-id"),
        pytest.param("POST", "/api/v1/items", {}, id="no-title"),
        pytest.param("POST", "/api/v1/items", {"title": ""}, id="empty-title"),
        pytest.param("POST", "/api/v1/items", {"title": "x" * 201}, id="long-title"),
        # The limit holds for the title as sent, as documented, not as trimmed.
        pytest.param("POST", "/api/v1/items", {"title": "x" * 200 + " "}, id="long-padded-title"),
        pytest.param("POST", "/api/v1/items", {"title": " \t\u3000"}, id="blank-title"),
        pytest.param("POST", "/api/v1/items", {"title": "t", "tenant_id": "x"}, id="extra-field"),
        pytest.param("POST", "/api/v1/items", {"title": "a\x00b"}, id="nul"),
        pytest.param("PATCH", "/api/v1/items/{id}", {"title": None}, id="null-title"),
        pytest.param("PATCH", "/api/v1/items/{id}", {"title": 3}, id="wrong-type"),
    ],
)
async def test_bad_item_requests_get_422(
    client: AsyncClient, owner: Account, method: str, path: str, body: object
) -> None:
    item = await _create(client, owner)
    response = await client.request(
        method, path.format(id=item["id"]), json=body, headers=owner.headers
    )
    assert response.status_code == 422
    assert "detail" in response.json()


TITLES = [
    "x" * 200,
    " " * 199 + "x",
    "x" * 200 + " ",
    "x" * 201,
    "",
    " \t\n",
    "\x1c\u3000\u2028",  # whitespace to Python, each of them
    "\ufeff",  # whitespace to ECMA-262, not to Python: a title
    "a\x00b",
    "\U0001f600",
]


@pytest.mark.parametrize("title", TITLES)
async def test_the_schema_tells_which_titles_are_taken(
    client: AsyncClient, owner: Account, title: str
) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    documented = schemas["ItemCreate"]["properties"]["title"]
    # The pattern reads the same in ECMA-262, Python and Rust (pydantic): re decides here.
    length_ok = documented["minLength"] <= len(title) <= documented["maxLength"]
    valid = length_ok and re.search(documented["pattern"], title)
    response = await client.post("/api/v1/items", json={"title": title}, headers=owner.headers)
    assert response.status_code == (201 if valid else 422), response.text
    if valid:
        assert response.json()["title"] == title.strip()  # stored trimmed
    # A partial update takes the same titles, and never null: omitting the title keeps it.
    update = schemas["ItemUpdate"]["properties"]["title"]
    keys = ("type", "minLength", "maxLength", "pattern")
    assert {key: update[key] for key in keys} == {key: documented[key] for key in keys}
    assert "anyOf" not in update
    assert "default" not in update


async def test_items_require_authentication(client: AsyncClient) -> None:
    response = await client.get("/api/v1/items")
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
