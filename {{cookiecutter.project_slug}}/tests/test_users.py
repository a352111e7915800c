from httpx import AsyncClient

from tests.support.helpers import PASSWORD, Account, invite


async def test_me_describes_the_caller(client: AsyncClient, owner: Account) -> None:
    response = await client.get("/api/v1/users/me", headers=owner.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(owner.user_id)
    assert body["tenant_id"] == str(owner.tenant_id)
    assert body["role"] == "owner"
    assert "hashed_password" not in body


async def test_owner_invites_a_member_who_can_log_in(client: AsyncClient, owner: Account) -> None:
    member = await invite(client, owner)
    response = await client.get("/api/v1/users/me", headers=member.headers)
    assert response.status_code == 200
    assert response.json()["tenant_id"] == str(owner.tenant_id)
    assert response.json()["role"] == "member"


async def test_a_member_cannot_invite(client: AsyncClient, owner: Account) -> None:
    member = await invite(client, owner)
    response = await client.post(
        "/api/v1/users",
        json={"email": "new@example.com", "password": PASSWORD},
        headers=member.headers,
    )
    assert response.status_code == 403
    assert response.json() == {"detail": "Only a tenant owner may do this"}


async def test_an_email_taken_in_another_tenant_cannot_be_invited(
    client: AsyncClient, owner: Account, rival: Account
) -> None:
    response = await client.post(
        "/api/v1/users",
        json={"email": rival.email.upper(), "password": PASSWORD},
        headers=owner.headers,
    )
    assert response.status_code == 409


async def test_invite_cannot_name_another_tenant(
    client: AsyncClient, owner: Account, rival: Account
) -> None:
    response = await client.post(
        "/api/v1/users",
        json={"email": "x@example.com", "password": PASSWORD, "tenant_id": str(rival.tenant_id)},
        headers=owner.headers,
    )
    assert response.status_code == 422


async def test_users_list_shows_only_the_callers_tenant(
    client: AsyncClient, owner: Account, rival: Account
) -> None:
    member = await invite(client, owner)
    await invite(client, rival)
    response = await client.get("/api/v1/users", headers=member.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 2
    assert {user["id"] for user in body["items"]} == {str(owner.user_id), str(member.user_id)}
    assert {user["tenant_id"] for user in body["items"]} == {str(owner.tenant_id)}


async def test_users_list_paginates(client: AsyncClient, owner: Account) -> None:
    for _ in range(2):
        await invite(client, owner)
    page = await client.get("/api/v1/users?limit=2&offset=1", headers=owner.headers)
    assert page.status_code == 200
    assert page.json()["total"] == 3
    assert len(page.json()["items"]) == 2
    for query in ("limit=0", "limit=101", "offset=-1", "limit=abc"):
        response = await client.get(f"/api/v1/users?{query}", headers=owner.headers)
        assert response.status_code == 422, query
