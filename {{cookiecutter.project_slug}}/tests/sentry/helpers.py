"""What the Sentry tests share: settings pointed at a receiver, an app with routes that fail
on purpose, a burst of requests whose every answer is checked, and a way to know that
everything sent so far has arrived.

Nothing here imports sentry_sdk: one test runs it in a process where the SDK is missing."""

import asyncio
import logging
import re
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from httpx import AsyncClient

from app import sentry
from app.api.deps import CurrentUser
from app.core.config import Settings
from app.main import create_app
from tests.support.helpers import Account, running

if TYPE_CHECKING:  # the receiver needs sentry_sdk, which one test runs without
    from tools.sentry_dev.receiver import EnvelopeReceiver

TEST_RELEASE = "acme@test"
route_logger = logging.getLogger("app.tests.routes")


class BoomError(Exception):
    """The error the test routes raise."""


class PaymentDeclinedError(Exception):
    """A domain error that asks to be grouped by its kind, not by its stack trace."""

    sentry_fingerprint = sentry.fingerprint("payment-declined")


SENTRY_DEFAULTS = {"release": TEST_RELEASE, "traces_sample_rate": "0", "shutdown_timeout": "2"}


def sentry_env(monkeypatch: pytest.MonkeyPatch, **values: object) -> None:
    """SENTRY_* for the apps this test starts, set as an operator sets them: the environment,
    which init_sentry reads at start-up. The given values over a test release, no tracing and
    a 2 s flush."""
    for name, value in (SENTRY_DEFAULTS | values).items():
        monkeypatch.setenv(f"SENTRY_{name.upper()}", str(value))


def failing_app(settings: Settings) -> FastAPI:
    """The real app plus routes under /test that fail in the ways the tests need."""
    # INFO: records become breadcrumbs only when they are logged.
    app = create_app(settings.model_copy(update={"log_level": "INFO"}))
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

    app.include_router(router)
    return app


def with_a_logging_probe(app: FastAPI) -> FastAPI:
    """The app with a /health that logs at INFO and ERROR: a probe's records must make no
    breadcrumb, and its ERROR an event about the probe alone."""

    async def health() -> dict[str, str]:
        route_logger.info("health checked")
        route_logger.error("health check failed")
        return {"status": "ok", "database": "ok"}

    # In front of the real /health, which would match first.
    app.router.routes.insert(0, APIRoute("/health", health, methods=["GET"]))
    return app


def settle(receiver: "EnvelopeReceiver") -> None:
    """Wait until everything sent so far has arrived: the SDK sends in order from one queue,
    so once a marker sent last is in, every earlier event is too. Spans, logs and metrics wait
    in the SDK's batchers first (3.x streams spans through one): flushed into the queue before
    the marker."""
    import sentry_sdk  # here: one test runs these helpers without the SDK

    sentry_sdk.flush(timeout=5)
    marker = f"marker {uuid.uuid4()}"
    sentry.capture_message(marker)
    receiver.wait_for_event(lambda event: _message(event) == marker)


@dataclass(frozen=True)
class TracedSpan:
    """One span of a trace, read the same from either SDK generation."""

    op: str
    description: str
    data: dict[str, Any]
    origin: str
    status: str
    span_id: str
    parent_span_id: str | None


@dataclass(frozen=True)
class Trace:
    """A request's trace as it arrived: sentry-sdk 2.x sends one transaction event with its
    spans inside; 3.x streams spans in `span` items, the request's own (the segment) with
    `is_segment` set. Tests read both through this, so their assertions do not depend on the
    generation installed."""

    name: str
    source: str  # how the name was found: "url" (the raw path) or "component" (the endpoint)
    op: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    http_status: int | None
    failed: bool  # the request raised (2.x: internal_error; 3.x: error)
    data: dict[str, Any]
    spans: list[TracedSpan]


def traces(receiver: "EnvelopeReceiver") -> list[Trace]:
    """Every trace that arrived, oldest first (call settle() first)."""
    found = [_from_transaction(transaction) for transaction in receiver.transactions]
    streamed = [span for item in receiver.items("span") for span in item.get("items") or []]
    for segment in (span for span in streamed if span.get("is_segment")):
        children = [
            span
            for span in streamed
            if not span.get("is_segment")
            and _value((span.get("attributes") or {}).get("sentry.segment.id"))
            == segment["span_id"]
        ]
        found.append(_from_segment(segment, children))
    return found


def _from_transaction(transaction: dict[str, Any]) -> Trace:
    context = transaction["contexts"]["trace"]
    data = context.get("data") or {}
    return Trace(
        name=transaction["transaction"],
        source=(transaction.get("transaction_info") or {}).get("source", ""),
        op=context.get("op", ""),
        trace_id=context["trace_id"],
        span_id=context["span_id"],
        parent_span_id=context.get("parent_span_id"),
        http_status=data.get("http.response.status_code"),
        failed=context.get("status") == "internal_error",
        data=data,
        spans=[
            TracedSpan(
                op=span.get("op", ""),
                description=span.get("description", ""),
                data=span.get("data") or {},
                origin=span.get("origin", ""),
                status=span.get("status", "ok"),
                span_id=span["span_id"],
                parent_span_id=span.get("parent_span_id"),
            )
            for span in transaction.get("spans") or []
        ],
    )


def _from_segment(segment: dict[str, Any], children: list[dict[str, Any]]) -> Trace:
    attributes = segment.get("attributes") or {}
    return Trace(
        name=segment["name"],
        source=_value(attributes.get("sentry.segment.name.source")) or "",
        op=_value(attributes.get("sentry.op")) or "",
        trace_id=segment["trace_id"],
        span_id=segment["span_id"],
        parent_span_id=segment.get("parent_span_id"),
        http_status=_value(attributes.get("http.response.status_code")),
        failed=segment.get("status") == "error",
        data={key: _value(value) for key, value in attributes.items()},
        spans=[
            TracedSpan(
                op=_value((span.get("attributes") or {}).get("sentry.op")) or "",
                description=span["name"],
                data={key: _value(value) for key, value in (span.get("attributes") or {}).items()},
                origin=_value((span.get("attributes") or {}).get("sentry.origin")) or "",
                status=span.get("status", "ok"),
                span_id=span["span_id"],
                parent_span_id=span.get("parent_span_id"),
            )
            for span in sorted(children, key=lambda span: span.get("start_timestamp", 0))
        ],
    )


def _value(attribute: Any) -> Any:
    """A streamed span's attribute as sent ({"type": ..., "value": ...}), or a plain value."""
    if isinstance(attribute, dict) and "value" in attribute:
        return attribute["value"]
    return attribute


def _message(event: dict[str, Any]) -> str:
    logentry = event.get("logentry") or {}
    return str(event.get("message") or logentry.get("formatted") or logentry.get("message") or "")


def real_events(receiver: "EnvelopeReceiver") -> list[dict[str, Any]]:
    """The events that arrived, without the settle() markers."""
    return [event for event in receiver.events if not _message(event).startswith("marker ")]


def exception_types(event: dict[str, Any]) -> list[str]:
    return [value["type"] for value in (event.get("exception") or {}).get("values", [])]


def assert_reported_for(event: dict[str, Any], account: Account, url: str, query: str) -> None:
    """What the event of a signed-in GET must carry: the request, the user, the tenant."""
    assert event["request"]["method"] == "GET"
    assert event["request"]["url"] == url
    assert event["request"]["query_string"] == query
    assert event["user"] == {"id": str(account.user_id)}
    assert event["tags"]["tenant_id"] == str(account.tenant_id)
    assert event["contexts"]["tenant"] == {"id": str(account.tenant_id)}


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SentryLog(logging.Handler):
    """What app/sentry.py logs (the app's loggers do not propagate to pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def wait_for(self, fragment: str, timeout: float = 5.0) -> str:
        """The first line containing `fragment`; some are logged from a thread, a bit later."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if fragment in message:
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no log line with {fragment!r}; got {self.messages}")


@contextmanager
def capturing_sentry_log() -> Iterator[SentryLog]:
    records = SentryLog()
    sentry_logger = logging.getLogger("app.sentry")
    sentry_logger.addHandler(records)
    try:
        yield records
    finally:
        sentry_logger.removeHandler(records)


# ---------------------------------------------------------------------------------------------
# A burst of concurrent requests, each with the one answer it must get.
# ---------------------------------------------------------------------------------------------

BURST_ROUNDS = 8  # x 6 kinds of request = 48 concurrent requests, 8 of them failing with 500
EVENT_ID = re.compile(r"[0-9a-f]{32}")
INTERNAL_ERROR = {"detail": "Internal Server Error"}
TITLE_TOO_SHORT = {
    "detail": [
        {
            "type": "string_too_short",
            "loc": ["body", "title"],
            "msg": "String should have at least 1 character",
            "ctx": {"min_length": 1},
        }
    ]
}


@dataclass(frozen=True)
class Call:
    """One request of the burst and the answer it must get."""

    method: str
    path: str
    status: int
    body: Any
    json: Any = None


def burst_calls(account: Account, item: dict[str, Any], rounds: int = BURST_ROUNDS) -> list[Call]:
    """Probes, reads, successes and failures of each kind, interleaved; `item` is the one item
    the account's tenant holds."""
    page = {"items": [item], "total": 1, "limit": 50, "offset": 0}
    calls: list[Call] = []
    for round_ in range(rounds):
        calls += [
            Call("GET", "/health/ready", 200, {"status": "ok", "database": "ok"}),
            Call("GET", "/api/v1/items", 200, page),
            Call("GET", f"/test/maybe/{2 * round_}", 200, {"tenant_id": str(account.tenant_id)}),
            Call("GET", f"/test/maybe/{2 * round_ + 1}", 500, INTERNAL_ERROR),
            Call("GET", f"/api/v1/items/{uuid.uuid4()}", 404, {"detail": "Item not found"}),
            Call("POST", "/api/v1/items", 422, TITLE_TOO_SHORT, json={"title": ""}),
        ]
    return calls


async def serve_burst(http: AsyncClient, account: Account, *, sentry_on: bool) -> list[str]:
    """Fire the burst at once and check every answer; returns the event ids the 500s carried
    (a 500 carries one exactly when Sentry is on)."""
    created = await http.post("/api/v1/items", json={"title": "burst"}, headers=account.headers)
    assert created.status_code == 201, created.text
    calls = burst_calls(account, created.json())
    answers = await asyncio.gather(
        *(
            http.request(call.method, call.path, json=call.json, headers=account.headers)
            for call in calls
        )
    )
    event_ids: list[str] = []
    for call, answer in zip(calls, answers, strict=True):
        body = answer.json()
        if call.status == 500 and sentry_on:
            event_ids.append(body.pop("event_id", "missing"))
        assert (answer.status_code, body) == (call.status, call.body), (call, answer.text)
    assert all(EVENT_ID.fullmatch(event_id) for event_id in event_ids), event_ids
    assert len(set(event_ids)) == len(event_ids)
    return event_ids


async def serve_then_stop(app: FastAPI, work: Callable[[AsyncClient], Awaitable[object]]) -> float:
    """Start the app, let `work` use it, stop it; returns how long stopping took (the lifespan's
    end: engine disposal and the Sentry flush)."""
    async with running(app) as http:
        await work(http)
        stopping = time.monotonic()
    return time.monotonic() - stopping
