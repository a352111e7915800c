"""A database lost while the app runs is reported: each 503 it causes sends the driver's error
to the (loopback) receiver, with the route, the user and the tenant."""

from pathlib import Path

import pytest

from app.core.config import Settings
from app.main import create_app
from tests.sentry.helpers import (
    assert_reported_for,
    exception_types,
    real_events,
    sentry_env,
    settle,
)
from tests.support.helpers import running, sign_up
from tests.support.outage import interruptible_database
from tools.sentry_dev.receiver import EnvelopeReceiver

# What the drivers raise when the database is gone: SQLite's busy lock; on PostgreSQL, the
# pooled connection closed under the app (asyncpg's InterfaceError or
# ConnectionDoesNotExistError, depending on when it notices), or a refused reconnection
# (tests/support/outage.py).
OUTAGE_ERRORS = {
    "OperationalError",
    "InterfaceError",
    "ConnectionDoesNotExistError",
    "ConnectionRefusedError",
}


async def test_a_database_outage_reaches_the_receiver_with_route_user_and_tenant(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with EnvelopeReceiver() as receiver:
        sentry_env(monkeypatch, dsn=receiver.dsn)
        async with interruptible_database(tmp_path) as (database_url, outage):
            configured = settings.model_copy(update={"database_url": database_url})
            async with running(create_app(configured)) as http:
                owner = await sign_up(http)
                with outage:
                    response = await http.get("/api/v1/items?limit=7", headers=owner.headers)
                settle(receiver)

    assert response.status_code == 503
    [event] = real_events(receiver)
    assert set(exception_types(event)) & OUTAGE_ERRORS
    assert event["level"] == "error"
    assert event["transaction"] == "app.api.routes.items.list_items"
    assert_reported_for(event, owner, "http://testserver/api/v1/items", "limit=7")
