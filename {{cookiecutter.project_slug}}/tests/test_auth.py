import base64
import hashlib
import hmac
import json
import math
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from hypothesis import event, given, note
from hypothesis import strategies as st
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.security import REQUIRED_CLAIMS, create_access_token
from app.models import Tenant, User
from tests.support.helpers import PASSWORD, Account


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
        # What the form's schema refuses, and no account can have, is just as wrong.
        pytest.param({"username": "nobody"}, id="not-an-email"),
        pytest.param({"password": "short"}, id="short-password"),
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


async def test_the_login_form_documents_what_an_account_can_have(client: AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    form = schemas["LoginForm"]["properties"]
    signup = schemas["TenantSignup"]["properties"]
    assert form["username"] | {"title": "Email"} == signup["email"]
    assert form["password"] == signup["password"] | {"format": "password"}
    assert schemas["LoginForm"]["required"] == ["username", "password"]


@pytest.mark.parametrize(
    ("grant_type", "expected"),
    [
        pytest.param("password", 200, id="password"),
        pytest.param("", 200, id="empty-as-documented"),  # an empty field counts as not sent
        pytest.param("client_credentials", 422, id="other-grant"),
    ],
)
async def test_the_grant_type_is_password_or_nothing(
    client: AsyncClient, owner: Account, grant_type: str, expected: int
) -> None:
    pattern = (await client.get("/openapi.json")).json()["components"]["schemas"]["LoginForm"][
        "properties"
    ]["grant_type"]["pattern"]
    assert bool(re.search(pattern, grant_type)) == (expected == 200)
    form = {"grant_type": grant_type, "username": owner.email, "password": PASSWORD}
    response = await client.post("/api/v1/auth/token", data=form)
    assert response.status_code == expected, response.text


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
    admin_sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    app: FastAPI,
    owner: Account,
) -> None:
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8 * 1024),)).hash(PASSWORD)
    async with admin_sessions() as session:
        await session.execute(
            update(User).where(User.id == owner.user_id).values(hashed_password=weak)
        )
        await session.commit()
    response = await client.post(
        "/api/v1/auth/token", data={"username": owner.email, "password": PASSWORD}
    )
    assert response.status_code == 200
    async with admin_sessions() as session:
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


def _valid_claims(account: Account) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": str(account.user_id),
        "tid": str(account.tenant_id),
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }


def _forge(settings: Settings, account: Account, **changes: Any) -> str:
    """A token like the app's, with some claims changed (or removed, when None)."""
    claims = _valid_claims(account)
    key = changes.pop("key", settings.secret_key.get_secret_value())
    algorithm = changes.pop("algorithm", "HS256")
    claims.update(changes)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=algorithm)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _hs256(header: object, claims: object, key: str) -> str:
    """A token HMAC-SHA256-signed with `key` whatever its header says or its claims hold
    (PyJWT's encoder refuses some of both, and would sign with the algorithm the header names)."""
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    signature = hmac.new(key.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


async def _me(client: AsyncClient, authorization: str | bytes | None) -> Response:
    if authorization is None:
        return await client.get("/api/v1/users/me")
    value = authorization if isinstance(authorization, bytes) else authorization.encode("latin-1")
    return await client.get("/api/v1/users/me", headers={b"Authorization": value})


def _assert_refused(response: Response) -> None:
    """401 as JSON, with the challenge, whatever was wrong: never a 500, never a detail that
    tells which check failed."""
    assert response.status_code == 401, response.text
    assert response.json()["detail"] in ("Not authenticated", "Could not validate credentials")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": datetime.now(UTC) - timedelta(seconds=1)}, id="expired"),
        pytest.param({"nbf": datetime.now(UTC) + timedelta(hours=1)}, id="not-yet-valid"),
        pytest.param({"key": "another-key-of-sufficient-length-000"}, id="other-key"),
        pytest.param({"algorithm": "HS512"}, id="other-algorithm"),
        pytest.param({"algorithm": "HS384"}, id="other-hash-size"),
        pytest.param({"sub": "not-a-uuid"}, id="subject-not-uuid"),
        pytest.param({"sub": 12345}, id="subject-wrong-type"),
        pytest.param({"tid": 12345}, id="tenant-a-number"),
        pytest.param({"exp": "tomorrow"}, id="expiry-a-word"),
        # Would pass for a time in PyJWT (it calls int() on it); a NumericDate is a number.
        pytest.param({"exp": str(int(time.time()) + 3600)}, id="expiry-a-numeric-string"),
        pytest.param({"iat": True}, id="issued-at-a-boolean"),
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


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
async def test_a_token_missing_any_required_claim_gets_401(
    client: AsyncClient, settings: Settings, owner: Account, claim: str
) -> None:
    token = _forge(settings, owner, **{claim: None})
    _assert_refused(await _me(client, f"Bearer {token}"))


# Other families as a key-confusion attack would send them: HMAC-signed with the server's
# secret (cryptography is not installed to make real RSA/EC signatures, and the verifier must
# refuse on the header alone, before any signature is checked), and other ways to bend "alg".
TAMPERED_HEADERS: list[object] = [
    {"alg": "RS256", "typ": "JWT"},
    {"alg": "ES256", "typ": "JWT"},
    {"alg": "PS256", "typ": "JWT"},
    {"alg": "EdDSA", "typ": "JWT"},
    {"alg": "none", "typ": "JWT"},
    {"alg": "hs256", "typ": "JWT"},
    {"alg": "HS256 ", "typ": "JWT"},
    {"alg": ["HS256"], "typ": "JWT"},
    {"alg": None, "typ": "JWT"},
    {"typ": "JWT"},
    {"alg": "HS256", "crit": ["exp"]},
    ["HS256"],
]


async def test_a_token_whose_header_is_tampered_with_gets_401(
    client: AsyncClient, settings: Settings, owner: Account
) -> None:
    # One account for every header (a sign-up costs two argon2 hashes).
    key = settings.secret_key.get_secret_value()
    claims = _valid_claims(owner)
    # The same claims under an honest header pass: only the header makes the difference.
    honest = await _me(client, "Bearer " + _hs256({"alg": "HS256", "typ": "JWT"}, claims, key))
    assert honest.status_code == 200, honest.text
    for header in TAMPERED_HEADERS:
        response = await _me(client, "Bearer " + _hs256(header, claims, key))
        assert response.status_code == 401, header
        _assert_refused(response)


async def test_a_genuine_token_with_its_alg_rewritten_gets_401(
    client: AsyncClient, owner: Account
) -> None:
    token = owner.headers["Authorization"].removeprefix("Bearer ")
    _, payload, signature = token.split(".")
    for alg in ("none", "HS512", "RS256"):
        header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        _assert_refused(await _me(client, f"Bearer {header}.{payload}.{signature}"))
        _assert_refused(await _me(client, f"Bearer {header}.{payload}."))


async def test_deleted_user_loses_access_at_once(
    admin_sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    app: FastAPI,
    owner: Account,
) -> None:
    async with admin_sessions() as session:
        await session.execute(delete(User).where(User.id == owner.user_id))
        await session.commit()
    _assert_refused(await _me(client, owner.headers["Authorization"]))


_HEADER = _b64(b'{"alg":"HS256","typ":"JWT"}')
_CLAIMS = _b64(b'{"sub":"x"}')


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer", id="empty"),
        pytest.param("Bearer garbage", id="garbage"),
        pytest.param("Basic dXNlcjpwYXNz", id="wrong-scheme"),
        pytest.param("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", id="alg-none"),
        pytest.param("Bearer " + "A" * 20_000, id="huge"),
        pytest.param(f"Bearer {_HEADER}.{_b64(b'x' * 1_000_000)}.c2ln", id="huge-segment"),
        pytest.param(
            "Bearer " + _b64(b'{"alg":"HS256","kid":"' + b"k" * 100_000 + b'"}') + ".e30.c2ln",
            id="huge-header",
        ),
        pytest.param(f"Bearer {_HEADER}.{_CLAIMS}", id="two-segments"),
        pytest.param(f"Bearer {_HEADER}.{_CLAIMS}.c2ln.c2ln", id="four-segments"),
        pytest.param(f"Bearer {_HEADER}.{_CLAIMS}.a.b.c", id="five-segments-jwe"),
        pytest.param("Bearer ..", id="empty-segments"),
        pytest.param("Bearer !!!.@@@.###", id="not-base64"),
        pytest.param(f"Bearer {_HEADER}=.{_CLAIMS}==.c2ln", id="padded-base64"),
        pytest.param(f"Bearer {_b64(bytes(range(128, 256)))}.{_CLAIMS}.c2ln", id="header-not-utf8"),
        pytest.param(f"Bearer {_b64(b'not json')}.{_CLAIMS}.c2ln", id="header-not-json"),
        pytest.param(f"Bearer {_b64(b'[' * 100_000)}.{_CLAIMS}.c2ln", id="header-nested-deep"),
        pytest.param(f"Bearer {_HEADER}.{_b64(bytes(range(128, 256)))}.c2ln", id="claims-not-utf8"),
        pytest.param(b"Bearer \xff\xfe\x80.\xc3\x28.\xa0", id="raw-non-utf8-bytes"),
        pytest.param("bearer garbage", id="lower-case-scheme"),
        pytest.param("Bearer\tgarbage", id="tab-not-space"),
    ],
)
async def test_missing_or_malformed_authorization_gets_401(
    client: AsyncClient, authorization: str | bytes | None
) -> None:
    _assert_refused(await _me(client, authorization))


# Any JSON value, for claims and headers of every shape.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_segment = st.one_of(st.binary(max_size=64), _json.map(lambda v: json.dumps(v).encode())).map(_b64)
_bearer_values = st.one_of(
    st.binary(max_size=200),  # any bytes a header can carry, after the scheme
    st.lists(_segment, min_size=1, max_size=5).map(".".join).map(str.encode),
    # (header, claims) of any shape, to be signed with the server's own key
    st.tuples(st.one_of(_json, st.fixed_dictionaries({"alg": _json})), _json),
)


@given(value=_bearer_values)
async def test_any_bearer_value_gets_a_401_json_answer(
    client: AsyncClient, settings: Settings, value: bytes | tuple[object, object]
) -> None:
    if isinstance(value, tuple):
        value = _hs256(*value, settings.secret_key.get_secret_value()).encode()
    note(f"bearer value: {value!r}")  # the failing example's arguments print blank under asyncio
    _assert_refused(await _me(client, b"Bearer " + value))


MISSING = "<left out>"
_an_hour_off = st.sampled_from([-3600, 3600]).map(lambda shift: int(time.time()) + shift)
# What a claim may be changed to: left out, a time an hour off (as a number or as text: PyJWT
# reads "1700000000" as a time), a boolean (Python's True is 1), someone's id, any JSON.
_claim_changes = st.one_of(
    st.just(MISSING),
    _an_hour_off,
    _an_hour_off.map(str),
    st.booleans(),
    st.uuids().map(str),
    _json,
)


def _acceptable(claim: str, value: object, account: Account, now: float) -> bool:
    """What the token spec allows: ids of the right user, the access type, times that are
    finite numbers in range (a little slack for the clock moving during the request)."""
    if claim in ("sub", "tid"):
        expected = account.user_id if claim == "sub" else account.tenant_id
        return isinstance(value, str) and value == str(expected)
    if claim == "typ":
        return value == "access"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return value > now - 5 if claim == "exp" else value <= now + 5


@given(changes=st.dictionaries(st.sampled_from(REQUIRED_CLAIMS), _claim_changes, max_size=3))
async def test_a_signed_token_passes_only_with_every_claim_right(
    client: AsyncClient, settings: Settings, owner: Account, changes: dict[str, object]
) -> None:
    """Signed with the real key, so only the claims can be wrong: missing, of another type,
    out of range, naming someone else. Any of those is a 401, never a 500."""
    right = _valid_claims(owner)
    claims = {
        claim: changes.get(claim, value)
        for claim, value in right.items()
        if changes.get(claim) != MISSING
    }
    note(f"claims: {claims!r}")
    token = _hs256({"alg": "HS256", "typ": "JWT"}, claims, settings.secret_key.get_secret_value())
    response = await _me(client, f"Bearer {token}")
    now = time.time()
    if all(claim in claims and _acceptable(claim, claims[claim], owner, now) for claim in right):
        event("every claim right")
        assert response.status_code == 200, (claims, response.text)
    else:
        event("some claim wrong")
        _assert_refused(response)


async def test_an_unsigned_token_naming_a_real_user_is_refused(
    client: AsyncClient, owner: Account
) -> None:
    claims = {"sub": str(owner.user_id), "tid": str(owner.tenant_id), "typ": "access"}
    token = jwt.encode(claims, key=None, algorithm="none")
    response = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_deactivated_user_loses_access_at_once(
    admin_sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    app: FastAPI,
    owner: Account,
) -> None:
    async with admin_sessions() as session:
        await session.execute(update(User).where(User.id == owner.user_id).values(is_active=False))
        await session.commit()
    response = await client.get("/api/v1/users/me", headers=owner.headers)
    assert response.status_code == 401
    login = await client.post(
        "/api/v1/auth/token", data={"username": owner.email, "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_user_moved_to_another_tenant_loses_the_old_token(
    admin_sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    app: FastAPI,
    owner: Account,
) -> None:
    async with admin_sessions() as session:
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
