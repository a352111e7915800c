"""Passwords are stored as argon2id hashes only, and never leave the app again: not in an
answer (success or failure), not in a log record, at any level."""

import logging
import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.security import password_hash
from app.models import User
from tests.support.helpers import PASSWORD, Account, invite

_FORMAT = logging.Formatter("%(name)s %(levelname)s %(message)s")


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The formatted line with any traceback, and every attribute (extras, raw args) too.
        self.texts.append(_FORMAT.format(record) + repr(vars(record)))


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every record any logger emits, at DEBUG and up, SQLAlchemy's statements and their
    parameters included (it mutes itself to WARNING unless asked). The app's own logger does
    not propagate (app/core/logging.py gives it its own handler), so it is watched too."""
    recorder = _Recorder()
    watched = [logging.getLogger(), logging.getLogger("app")]
    turned_up = [*watched, logging.getLogger("sqlalchemy")]
    levels = [logger.level for logger in turned_up]
    for logger in turned_up:
        logger.setLevel(logging.DEBUG)
    for logger in watched:
        logger.addHandler(recorder)
    try:
        yield recorder.texts
    finally:
        for logger in watched:
            logger.removeHandler(recorder)
        for logger, level in zip(turned_up, levels, strict=True):
            logger.setLevel(level)


async def test_stored_passwords_are_current_argon2id_hashes(
    admin_sessions: async_sessionmaker[AsyncSession],
    client: AsyncClient,
    app: FastAPI,
    owner: Account,
) -> None:
    member = await invite(client, owner)
    async with admin_sessions() as session:
        stored = (
            await session.scalars(
                select(User.hashed_password).where(User.id.in_([owner.user_id, member.user_id]))
            )
        ).all()
    assert len(stored) == 2
    for hashed in stored:
        assert hashed.startswith("$argon2id$")
        assert PASSWORD not in hashed
        # ...made with today's parameters: nothing to upgrade at the next login.
        assert password_hash.verify_and_update(PASSWORD, hashed) == (True, None)
    assert stored[0] != stored[1]  # salted: one password, two hashes


def _secret(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def _assert_not_in(answer: Response, *secrets: str) -> None:
    seen = answer.text + repr(answer.headers.multi_items())
    for secret in secrets:
        assert secret not in seen, (answer.status_code, secret)


async def test_passwords_never_appear_in_answers_or_logs(
    client: AsyncClient, logs: list[str]
) -> None:
    owner_pw, member_pw, wrong_pw, unknown_pw = (_secret(n) for n in ("own", "mem", "bad", "unk"))
    short_pw, long_pw, taken_pw = "sh0rt!", _secret("x" * 120), _secret("taken")
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    member = f"member-{uuid.uuid4().hex[:8]}@example.com"
    signup = {"tenant_name": "Acme", "email": email, "password": owner_pw}
    answers = [
        await client.post("/api/v1/tenants", json=signup),
        await client.post("/api/v1/tenants", json=signup | {"password": short_pw}),  # 422
        await client.post("/api/v1/tenants", json=signup | {"password": long_pw}),  # 422
        await client.post("/api/v1/tenants", json=signup | {"password": taken_pw}),  # 409
        await client.post("/api/v1/auth/token", data={"username": email, "password": wrong_pw}),
        await client.post(
            "/api/v1/auth/token", data={"username": "nobody@example.com", "password": unknown_pw}
        ),
        login := await client.post(
            "/api/v1/auth/token", data={"username": email, "password": owner_pw}
        ),
    ]
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    invitation = {"email": member, "password": member_pw}
    answers += [
        await client.post("/api/v1/users", json=invitation | {"role": "boss"}, headers=headers),
        await client.post("/api/v1/users", json=invitation, headers=headers),
        await client.post("/api/v1/auth/token", data={"username": member, "password": member_pw}),
        await client.get("/api/v1/users/me", headers=headers),
        await client.get("/api/v1/users", headers=headers),
    ]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [201, 422, 422, 409, 401, 401, 200, 422, 201, 200, 200, 200]
    secrets = (owner_pw, member_pw, wrong_pw, unknown_pw, short_pw, long_pw, taken_pw)
    for answer in answers:
        _assert_not_in(answer, *secrets)
    # The capture works, and sees request data (the SQL log carries the e-mail addresses the
    # requests used): the passwords are missing because they are never logged.
    assert any(member in text for text in logs)
    leaks = [text for text in logs if any(secret in text for secret in secrets)]
    assert leaks == []
