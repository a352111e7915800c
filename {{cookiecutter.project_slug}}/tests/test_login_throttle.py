"""Failed logins are throttled per account and per client address, in the database, so that
every instance of the app shares the counts; the throttle tells no more than a 401 does."""

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest
from httpx import AsyncClient, Response
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.db.base import utc_now
from app.main import create_app
from app.models import LoginFailure
from tests.support.helpers import PASSWORD, running, sign_up

TOKEN = "/api/v1/auth/token"
ACCOUNT_LIMIT, ADDRESS_LIMIT, WINDOW = 3, 5, 600


@pytest.fixture
def throttled(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "login_max_failures_per_account": ACCOUNT_LIMIT,
            "login_max_failures_per_address": ADDRESS_LIMIT,
            "login_failure_window_seconds": WINDOW,
        }
    )


@pytest.fixture
async def instances(throttled: Settings) -> AsyncIterator[list[AsyncClient]]:
    """Two instances of the app on one database, as two hosts behind a load balancer would
    be; the first client calls from 10.0.0.1, the second from 10.0.0.2."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(running(create_app(throttled), (address, 1234)))
            for address in ("10.0.0.1", "10.0.0.2")
        ]


WRONG = "wrong password"


async def _login(client: AsyncClient, email: str, password: str = WRONG) -> Response:
    return await client.post(TOKEN, data={"username": email, "password": password})


def _headers(answer: Response) -> list[tuple[str, str]]:
    return sorted((k, "n" if k == "retry-after" else v) for k, v in answer.headers.multi_items())


def _assert_throttled(answer: Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json() == {"detail": "Too many failed logins; try again later"}
    assert 0 < int(answer.headers["retry-after"]) <= WINDOW


async def test_an_account_is_throttled_after_its_limit_of_failures(
    instances: list[AsyncClient], hashing_threads: list[int]
) -> None:
    client = instances[0]
    owner = await sign_up(client)
    hashed_before = len(hashing_threads)
    for _ in range(ACCOUNT_LIMIT):
        assert (await _login(client, owner.email)).status_code == 401
    _assert_throttled(await _login(client, owner.email, PASSWORD))  # the right one too
    _assert_throttled(await _login(instances[1], owner.email, PASSWORD))  # from elsewhere too
    # ...and a throttled attempt costs no hash.
    assert len(hashing_threads) - hashed_before == ACCOUNT_LIMIT


async def test_an_address_is_throttled_after_its_limit_of_failures(
    instances: list[AsyncClient],
) -> None:
    first, second = instances
    owner = await sign_up(second)
    for n in range(ADDRESS_LIMIT):
        assert (await _login(first, f"nobody-{n}@example.com")).status_code == 401
    _assert_throttled(await _login(first, owner.email, PASSWORD))
    assert (await _login(second, owner.email, PASSWORD)).status_code == 200


async def test_a_success_resets_the_accounts_count(instances: list[AsyncClient]) -> None:
    client = instances[0]
    owner = await sign_up(client)
    for _ in range(2):
        for _ in range(ACCOUNT_LIMIT - 1):
            assert (await _login(client, owner.email)).status_code == 401
        assert (await _login(client, owner.email, PASSWORD)).status_code == 200


async def test_two_instances_share_the_count(instances: list[AsyncClient]) -> None:
    first, second = instances
    owner = await sign_up(first)
    assert (await _login(first, owner.email)).status_code == 401
    assert (await _login(second, owner.email)).status_code == 401
    assert (await _login(first, owner.email)).status_code == 401
    _assert_throttled(await _login(second, owner.email, PASSWORD))


async def test_the_window_ends(
    instances: list[AsyncClient], admin_sessions: async_sessionmaker[AsyncSession]
) -> None:
    client = instances[0]
    owner = await sign_up(client)
    for _ in range(ACCOUNT_LIMIT):
        await _login(client, owner.email)
    _assert_throttled(await _login(client, owner.email, PASSWORD))
    async with admin_sessions() as session:
        ended = utc_now() - timedelta(seconds=WINDOW + 1)
        await session.execute(update(LoginFailure).values(window_started_at=ended))
        await session.commit()
    assert (await _login(client, owner.email, PASSWORD)).status_code == 200


async def test_an_unknown_email_is_answered_as_a_wrong_password(
    instances: list[AsyncClient], hashing_threads: list[int]
) -> None:
    # From two addresses, so that only the accounts' counts come into play.
    first, second = instances
    owner = await sign_up(first)
    for _ in range(ACCOUNT_LIMIT + 1):
        before = len(hashing_threads)
        known = await _login(first, owner.email)
        known_hashes = len(hashing_threads) - before
        unknown = await _login(second, "nobody@example.com")
        # Same status, body and headers; the same work (one hash, or none once throttled).
        assert (known.status_code, known.content) == (unknown.status_code, unknown.content)
        # (Retry-After counts down: the two may be a second apart.)
        assert _headers(known) == _headers(unknown)
        assert len(hashing_threads) - before == 2 * known_hashes


@pytest.fixture
def auth_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign,assignment]
    logger = logging.getLogger("app.api.routes.auth")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


async def test_throttling_logs_a_line_without_the_email_or_the_password(
    instances: list[AsyncClient], auth_log: list[logging.LogRecord]
) -> None:
    client = instances[0]
    owner = await sign_up(client)
    for _ in range(ACCOUNT_LIMIT):
        await _login(client, owner.email, "secret guess 1")
    assert auth_log == []
    _assert_throttled(await _login(client, owner.email, "secret guess 2"))
    assert len(auth_log) == 1
    record = auth_log[0]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("Login throttled: too many failures for this account")
    for secret in (owner.email, owner.email.split("@")[0], "secret guess", "10.0.0.1"):
        assert secret not in record.getMessage()
        assert secret not in repr(record.__dict__)
