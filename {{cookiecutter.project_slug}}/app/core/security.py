"""Password hashing (argon2 via pwdlib) and access tokens (HS256 JWTs via PyJWT)."""

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, partial
from typing import TypeVar

import anyio.to_thread
import jwt
from anyio import CapacityLimiter
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

T = TypeVar("T")

ALGORITHM = "HS256"
TOKEN_TYPE = "access"  # noqa: S105 - the "typ" claim, not a secret
# Claims a token must carry; a token missing any of them is refused outright.
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "tid", "typ"]
# NumericDate claims are JSON numbers (RFC 7519); PyJWT alone also takes "1700000000" or true.
TIME_CLAIMS = ("exp", "iat", "nbf")

# The first hasher hashes new passwords; hashes made by the others (or with older
# parameters) still verify and are upgraded on the next successful login.
password_hash = PasswordHash((Argon2Hasher(),))

# Verifying against this when the user does not exist keeps login timing uniform,
# so the response time does not tell an attacker which e-mails have accounts.
_DUMMY_HASH = password_hash.hash("not-a-real-password")


# Argon2 is deliberately slow (~0.1 s of CPU). It runs in worker threads (argon2 releases the
# GIL) so the event loop keeps serving, and at most one hash per core runs at once, so a burst
# of logins queues up instead of starving every other request of CPU.
@cache
def _hashing_limiter() -> CapacityLimiter:
    # Made on first use: a limiter must be created inside the running event loop.
    return CapacityLimiter(max(1, os.cpu_count() or 1))


async def _off_the_loop(work: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(work, limiter=_hashing_limiter())


def _verify(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """Return (valid, new_hash); new_hash is set when the stored hash should be upgraded."""
    if hashed is None:
        password_hash.verify(password, _DUMMY_HASH)
        return False, None
    return password_hash.verify_and_update(password, hashed)


async def hash_password(password: str) -> str:
    return await _off_the_loop(partial(password_hash.hash, password))


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    return await _off_the_loop(partial(_verify, password, hashed))


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
        if any(type(payload[claim]) not in (int, float) for claim in TIME_CLAIMS):
            raise InvalidTokenError("a time claim is not a number")
        return TokenClaims(user_id=uuid.UUID(payload["sub"]), tenant_id=uuid.UUID(payload["tid"]))
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidTokenError(str(exc)) from exc
