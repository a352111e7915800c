"""What the Sentry tests share: settings pointed at a receiver, an app with routes that fail
on purpose, and a way to know that everything sent so far has arrived."""

import logging
import socket
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request

from app import sentry
from app.api.deps import CurrentUser
from app.core.config import Settings, load_settings
from app.main import create_app

if TYPE_CHECKING:  # the receiver needs sentry_sdk, which one test runs without
    from tests.sentry_receiver import EnvelopeReceiver

TEST_RELEASE = "acme@test"
route_logger = logging.getLogger("app.tests.routes")


class BoomError(Exception):
    """The error the test routes raise."""


class PaymentDeclinedError(Exception):
    """A domain error that asks to be grouped by its kind, not by its stack trace."""

    sentry_fingerprint = sentry.fingerprint("payment-declined")


def sentry_settings(base: Settings, **sentry_values: Any) -> Settings:
    """The test settings plus SENTRY_* values, validated as they would be at start-up."""
    values: dict[str, Any] = {
        "database_url": base.database_url,
        "environment": "test",
        "secret_key": base.secret_key.get_secret_value(),
        "log_level": "INFO",  # INFO records become breadcrumbs only when they are logged
        "sentry_release": TEST_RELEASE,
        "sentry_traces_sample_rate": 0.0,
        "sentry_shutdown_timeout": 2.0,
    }
    return load_settings(**(values | sentry_values))


def failing_app(settings: Settings) -> FastAPI:
    """The real app plus routes under /test that fail in the ways the tests need."""
    app = create_app(settings)
    router = APIRouter(prefix="/test")

    @router.get("/boom")
    async def boom(user: CurrentUser) -> None:
        raise BoomError("kaboom")

    @router.get("/maybe/{n}")
    async def maybe(n: int, user: CurrentUser) -> dict[str, str]:
        if n % 2:
            raise BoomError(f"odd request {n}")
        return {"tenant_id": str(user.tenant_id)}

    @router.post("/leaky")
    async def leaky(payload: dict[str, Any], request: Request, user: CurrentUser) -> None:
        password = payload.get("password")
        route_logger.info("handling password=%s", password)
        raise BoomError(f"rejected password={password} token={request.query_params.get('token')}")

    @router.get("/logged")
    async def logged(user: CurrentUser) -> dict[str, str]:
        route_logger.info("first step done")
        route_logger.error("second step failed")
        return {"status": "handled"}

    @router.get("/declined")
    async def declined(user: CurrentUser) -> None:
        raise PaymentDeclinedError(f"card declined for order {uuid.uuid4()}")

    @app.get("/metrics")
    async def metrics() -> dict[str, str]:
        route_logger.info("metrics scraped")
        route_logger.error("metrics export failed")
        return {"status": "exported"}

    app.include_router(router)
    return app


def settle(receiver: "EnvelopeReceiver") -> None:
    """Wait until everything sent so far has arrived: the SDK sends in order from one queue,
    so once a marker sent last is in, every earlier event is too."""
    marker = f"marker {uuid.uuid4()}"
    sentry.capture_message(marker)
    receiver.wait_for_event(lambda event: _message(event) == marker)


def _message(event: dict[str, Any]) -> str:
    logentry = event.get("logentry") or {}
    return str(event.get("message") or logentry.get("formatted") or logentry.get("message") or "")


def real_events(receiver: "EnvelopeReceiver") -> list[dict[str, Any]]:
    """The events that arrived, without the settle() markers."""
    return [event for event in receiver.events if not _message(event).startswith("marker ")]


def exception_types(event: dict[str, Any]) -> list[str]:
    return [value["type"] for value in (event.get("exception") or {}).get("values", [])]


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
