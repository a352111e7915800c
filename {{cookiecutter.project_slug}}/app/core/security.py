"""Password hashing (argon2 via pwdlib) and access tokens (HS256 JWTs via PyJWT)."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

ALGORITHM = "HS256"
TOKEN_TYPE = "access"  # noqa: S105 - the "typ" claim, not a secret
# Claims a token must carry; a token missing any of them is refused outright.
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "tid", "typ"]

# The first hasher hashes new passwords; hashes made by the others (or with older
# parameters) still verify and are upgraded on the next successful login.
password_hash = PasswordHash((Argon2Hasher(),))

# Verifying against this when the user does not exist keeps login timing uniform,
# so the response time does not tell an attacker which e-mails have accounts.
_DUMMY_HASH = password_hash.hash("not-a-real-password")


def hash_password(password: str) -> str:
    return password_hash.hash(password)


def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Return (valid, new_hash); new_hash is set when the stored hash should be upgraded."""
    if hashed is None:
        password_hash.verify(password, _DUMMY_HASH)
        return False, None
    return password_hash.verify_and_update(password, hashed)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID


class InvalidTokenError(Exception):
    """Any reason a bearer token cannot be trusted; the API answers 401 for all of them."""


def create_access_token(
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    secret_key: str,
    expires_delta: timedelta,
) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "tid": str(tenant_id),
        "typ": TOKEN_TYPE,
        "iat": now,
        "nbf": now,
        "exp": now + expires_delta,
    }
    return jwt.encode(payload, secret_key, algorithm=ALGORITHM)


def decode_access_token(token: str, secret_key: str) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            secret_key,
            algorithms=[ALGORITHM],  # never trust the token's own "alg" header
            options={"require": REQUIRED_CLAIMS},
        )
        if payload["typ"] != TOKEN_TYPE:
            raise InvalidTokenError("wrong token type")
        return TokenClaims(user_id=uuid.UUID(payload["sub"]), tenant_id=uuid.UUID(payload["tid"]))
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidTokenError(str(exc)) from exc
