import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import select, update

from app.core.config import Settings
from app.core.security import create_access_token
from app.models import Tenant, User
from tests.helpers import PASSWORD, Account


async def test_login_returns_a_bearer_token(client: AsyncClient, owner: Account) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"username": owner.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 30 * 60


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"password": "wrong password"}, id="wrong-password"),
        pytest.param({"username": "nobody@example.com"}, id="unknown-user"),
        pytest.param({"username": "nul\x00@example.com"}, id="nul-in-username"),
    ],
)
async def test_bad_credentials_get_one_indistinguishable_401(
    client: AsyncClient, owner: Account, credentials: dict[str, str]
) -> None:
    form = {"username": owner.email, "password": PASSWORD} | credentials
    response = await client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect e-mail or password"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_undecodable_form_bytes_are_just_bad_credentials(
    client: AsyncClient, owner: Account
) -> None:
    response = await client.post(
        "/api/v1/auth/token",
        content=b"username=%ED%A0%80%00&password=%FF%FE%00%00%00%00%00%00",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401


async def test_an_over_long_password_is_refused_without_hashing(
    client: AsyncClient, owner: Account, hashing_threads: list[int]
) -> None:
    form = {"username": owner.email, "password": PASSWORD + "x" * 1_000_000}
    response = await client.post("/api/v1/auth/token", data=form)
    assert response.status_code == 401
    assert hashing_threads == []
    # ...while a wrong password of normal length does cost a verification.
    wrong = await client.post(
        "/api/v1/auth/token", data={"username": owner.email, "password": "wrong password"}
    )
    assert wrong.status_code == 401
    assert len(hashing_threads) == 1


@pytest.mark.parametrize(
    ("signed_up_as", "logs_in_as"),
    [
        pytest.param("Ju\u0308rgen@example.com", "Ju\u0308rgen@example.com", id="decomposed"),
        pytest.param("Ju\u0308rgen@example.com", "J\u00fcrgen@EXAMPLE.com", id="composed"),
        pytest.param("ada@b\u00fccher.de", "ada@xn--bcher-kva.de", id="idna"),
        pytest.param("Bob <bob@example.com>", "Bob <bob@example.com>", id="display-name"),
        pytest.param("Bob <bob@example.com>", " BOB@example.com ", id="bare"),
    ],
)
async def test_login_normalises_the_address_as_sign_up_does(
    client: AsyncClient, signed_up_as: str, logs_in_as: str
) -> None:
    signup = {"tenant_name": "Acme", "email": signed_up_as, "password": PASSWORD}
    assert (await client.post("/api/v1/tenants", json=signup)).status_code == 201
    response = await client.post(
        "/api/v1/auth/token", data={"username": logs_in_as, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text


async def test_an_outdated_hash_is_upgraded_at_login(
    client: AsyncClient, app: FastAPI, owner: Account
) -> None:
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8 * 1024),)).hash(PASSWORD)
    async with app.state.session_factory() as session:
        await session.execute(
            update(User).where(User.id == owner.user_id).values(hashed_password=weak)
        )
        await session.commit()
    response = await client.post(
        "/api/v1/auth/token", data={"username": owner.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    async with app.state.session_factory() as session:
        stored = await session.scalar(select(User.hashed_password).where(User.id == owner.user_id))
    assert stored is not None
    assert stored != weak
    assert PasswordHash((Argon2Hasher(),)).verify_and_update(PASSWORD, stored) == (True, None)


async def test_a_file_sent_as_password_is_refused_without_echoing_it(
    client: AsyncClient, owner: Account
) -> None:
    response = await client.post(
        "/api/v1/auth/token",
        data={"username": owner.email},
        files={"password": ("secret.txt", b"top-secret-file-content")},
    )
    assert response.status_code == 422
    assert "secret" not in response.text
    assert "_file" not in response.text


async def test_login_without_form_fields_gets_422(client: AsyncClient) -> None:
    response = await client.post("/api/v1/auth/token", data={"username": "x@example.com"})
    assert response.status_code == 422


def _forge(settings: Settings, account: Account, **changes: Any) -> str:
    """A token like the app's, with some claims changed (or removed, when None)."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(account.user_id),
        "tid": str(account.tenant_id),
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
    }
    key = changes.pop("key", settings.secret_key.get_secret_value())
    algorithm = changes.pop("algorithm", "HS256")
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=algorithm)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": datetime.now(UTC) - timedelta(seconds=1)}, id="expired"),
        pytest.param({"nbf": datetime.now(UTC) + timedelta(hours=1)}, id="not-yet-valid"),
        pytest.param({"key": "another-key-of-sufficient-length-000"}, id="other-key"),
        pytest.param({"algorithm": "HS512"}, id="other-algorithm"),
        pytest.param({"sub": None}, id="no-subject"),
        pytest.param({"tid": None}, id="no-tenant"),
        pytest.param({"exp": None}, id="no-expiry"),
        pytest.param({"sub": "not-a-uuid"}, id="subject-not-uuid"),
        pytest.param({"sub": 12345}, id="subject-wrong-type"),
        pytest.param({"sub": str(uuid.uuid4())}, id="unknown-user"),
        pytest.param({"tid": str(uuid.uuid4())}, id="wrong-tenant"),
        pytest.param({"typ": "refresh"}, id="wrong-type"),
    ],
)
async def test_untrustworthy_tokens_get_401(
    client: AsyncClient, settings: Settings, owner: Account, changes: dict[str, Any]
) -> None:
    token = _forge(settings, owner, **changes)
    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Could not validate credentials"}


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer", id="empty"),
        pytest.param("Bearer garbage", id="garbage"),
        pytest.param("Basic dXNlcjpwYXNz", id="wrong-scheme"),
        pytest.param("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", id="alg-none"),
        pytest.param("Bearer " + "A" * 20_000, id="huge"),
    ],
)
async def test_missing_or_malformed_authorization_gets_401(
    client: AsyncClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 401


async def test_an_unsigned_token_naming_a_real_user_is_refused(
    client: AsyncClient, owner: Account
) -> None:
    claims = {"sub": str(owner.user_id), "tid": str(owner.tenant_id), "typ": "access"}
    token = jwt.encode(claims, key=None, algorithm="none")
    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_deactivated_user_loses_access_at_once(
    client: AsyncClient, app: FastAPI, owner: Account
) -> None:
    async with app.state.session_factory() as session:
        await session.execute(update(User).where(User.id == owner.user_id).values(is_active=False))
        await session.commit()
    response = await client.get("/api/v1/users/me", headers=owner.headers)
    assert response.status_code == 401
    login = await client.post(
        "/api/v1/auth/token", data={"username": owner.email, "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_user_moved_to_another_tenant_loses_the_old_token(
    client: AsyncClient, app: FastAPI, owner: Account
) -> None:
    async with app.state.session_factory() as session:
        other = Tenant(name="Elsewhere")
        session.add(other)
        await session.flush()
        await session.execute(
            update(User).where(User.id == owner.user_id).values(tenant_id=other.id)
        )
        await session.commit()
    response = await client.get("/api/v1/users/me", headers=owner.headers)
    assert response.status_code == 401


def test_tokens_expire(settings: Settings) -> None:
    token = create_access_token(
        uuid.uuid4(), uuid.uuid4(), settings.secret_key.get_secret_value(), timedelta(minutes=5)
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert 299 <= claims["exp"] - claims["iat"] <= 300
