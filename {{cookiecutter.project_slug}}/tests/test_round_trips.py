"""What each request costs the database, counted, not timed: statements on either backend,
and on PostgreSQL round trips on the wire (tests/support/wire.py) and connections opened.

Counted on a warm app over a pool of one connection: the request is made twice first, so that
asyncpg's prepared statements are cached, as they are on a server that has been up a while.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.main import create_app
from tests.support.databases import BACKEND
from tests.support.helpers import running, sign_up
from tests.support.wire import RoundTripCounter

Call = Callable[[AsyncClient, "Caller"], Awaitable[Response]]

# route: (statements, round trips on PostgreSQL), for a caller whose tenant the connection
# already holds. Reads run without a transaction: the user lookup, then one query (a page
# with its total in one). Writes add BEGIN (which carries the tenant) and COMMIT.
COSTS: dict[str, tuple[str, Call, int, int]] = {
    "list": ("GET", lambda http, a: http.get("/api/v1/items?limit=20", headers=a.headers), 2, 2),
    "read": (
        "GET",
        lambda http, a: http.get(f"/api/v1/items/{a.item_id}", headers=a.headers),
        2,
        2,
    ),
    "users/me": ("GET", lambda http, a: http.get("/api/v1/users/me", headers=a.headers), 1, 1),
    "create": (
        "POST",
        lambda http, a: http.post("/api/v1/items", json={"title": "x"}, headers=a.headers),
        2,
        4,
    ),
    "health": ("GET", lambda http, a: http.get("/health"), 0, 0),
    "ready": ("GET", lambda http, a: http.get("/health/ready"), 1, 1),
}


@dataclass
class Caller:
    """A tenant's owner, and the one item the tenant holds."""

    headers: dict[str, str]
    item_id: uuid.UUID


@dataclass
class Counts:
    statements: int = 0
    checkouts: int = 0
    connects: int = 0
    round_trips: int = 0


class Meter:
    """Counts what the app's engine does; `round_trips` on PostgreSQL only."""

    def __init__(self, app: FastAPI, wire: RoundTripCounter | None) -> None:
        self.wire = wire
        self.now = Counts()
        engine = app.state.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine.pool, "checkout", self._checkout)
        event.listen(engine.pool, "connect", self._connect)

    def _statement(self, *_: object) -> None:
        self.now.statements += 1

    def _checkout(self, *_: object) -> None:
        self.now.checkouts += 1

    def _connect(self, *_: object) -> None:
        self.now.connects += 1

    async def cost(self, call: Awaitable[Response], expected_status: int) -> Counts:
        before = Counts(**vars(self.now))
        wire_before = self.wire.round_trips if self.wire else 0
        response = await call
        assert response.status_code == expected_status, response.text
        return Counts(
            statements=self.now.statements - before.statements,
            checkouts=self.now.checkouts - before.checkouts,
            connects=self.now.connects - before.connects,
            round_trips=(self.wire.round_trips - wire_before) if self.wire else 0,
        )


@pytest.fixture
async def metered(settings: Settings) -> AsyncIterator[tuple[AsyncClient, Meter]]:
    url = make_url(settings.database_url)
    wire = None
    if BACKEND == "postgresql":
        wire = RoundTripCounter((url.host or "127.0.0.1", url.port or 5432))
        url = url.set(host="127.0.0.1", port=wire.port).update_query_dict({"ssl": "disable"})
    one_connection = {
        "database_url": url.render_as_string(hide_password=False),
        "database_pool_size": 1,
        "database_max_overflow": 0,
    }
    app = create_app(settings.model_copy(update=one_connection))
    try:
        async with running(app) as http:
            yield http, Meter(app, wire)
    finally:
        if wire is not None:
            wire.cut()


async def _account(http: AsyncClient, name: str) -> Caller:
    account = await sign_up(http, name)
    created = await http.post("/api/v1/items", json={"title": "first"}, headers=account.headers)
    return Caller(account.headers, uuid.UUID(created.json()["id"]))


@pytest.mark.parametrize("route", sorted(COSTS))
async def test_what_a_request_costs_the_database(
    metered: tuple[AsyncClient, Meter], route: str
) -> None:
    http, meter = metered
    method, call, statements, round_trips = COSTS[route]
    account = await _account(http, "Acme")
    status = 201 if method == "POST" else 200
    for _ in range(2):  # warm: the prepared statements cached, the connection open
        await meter.cost(call(http, account), status)
    cost = await meter.cost(call(http, account), status)
    expected = Counts(
        statements=statements,
        checkouts=1 if statements else 0,
        connects=0,
        round_trips=round_trips if BACKEND == "postgresql" else 0,
    )
    assert cost == expected


@pytest.mark.skipif(BACKEND != "postgresql", reason="tenant binding: PostgreSQL")
async def test_a_read_for_another_tenant_than_the_last_costs_one_round_trip_more(
    metered: tuple[AsyncClient, Meter],
) -> None:
    http, meter = metered
    _, call, _, round_trips = COSTS["list"]
    first, second = await _account(http, "Acme"), await _account(http, "Globex")
    for _ in range(2):
        await meter.cost(call(http, first), 200)
        await meter.cost(call(http, second), 200)
    # The connection held the second tenant: the first's read sets its own (one set_config).
    assert (await meter.cost(call(http, first), 200)).round_trips == round_trips + 1
    assert (await meter.cost(call(http, first), 200)).round_trips == round_trips
    # A write binds its transaction in the BEGIN message, whatever the connection holds.
    _, create, _, create_trips = COSTS["create"]
    await meter.cost(create(http, second), 201)
    assert (await meter.cost(create(http, second), 201)).round_trips == create_trips
