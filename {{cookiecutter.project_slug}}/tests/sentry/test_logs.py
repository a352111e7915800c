"""Sentry logs (SENTRY_ENABLE_LOGS) proven on the wire: the app's log records at LOG_LEVEL
arrive as "log" items carrying the caller's tenant and user, scrubbed like events; with the
option off, none is ever sent, whoever asks the SDK for one."""

import asyncio
import logging
import uuid
from collections import Counter
from typing import Any

import pytest
import sentry_sdk
from fastapi import FastAPI

from app.api.deps import CurrentUser
from app.core.config import Settings
from tests.sentry.helpers import BoomError, failing_app, route_logger, sentry_env, settle
from tests.support.helpers import Account, running
from tools.sentry_dev.receiver import EnvelopeReceiver

Log = dict[str, Any]


def value(log: Log, attribute: str) -> Any:
    """An attribute's value: the SDK sends each as {"value": ..., "type": ...}."""
    return (log["attributes"].get(attribute) or {}).get("value")


def bodies(receiver: EnvelopeReceiver) -> list[str]:
    return [str(log["body"]) for log in receiver.logs]


@pytest.fixture
def logging_app(
    settings: Settings, receiver: EnvelopeReceiver, monkeypatch: pytest.MonkeyPatch
) -> FastAPI:
    sentry_env(monkeypatch, dsn=receiver.dsn, enable_logs="true")
    return failing_app(settings)  # LOG_LEVEL=INFO


async def test_a_requests_records_arrive_as_logs_with_its_tenant_and_user(
    logging_app: FastAPI, receiver: EnvelopeReceiver, owner: Account, rival: Account
) -> None:
    callers = [owner, rival, owner, rival, rival]
    async with running(logging_app) as http:
        answers = await asyncio.gather(
            *(http.get("/test/logged", headers=caller.headers) for caller in callers)
        )
        assert {answer.status_code for answer in answers} == {200}
        settle(receiver)  # flushes the SDK's log batcher first

    # Each item is a batch: {"items": [log, ...]}, each log with a body, a level, attributes.
    batches = receiver.items("log")
    assert batches
    assert all(isinstance(batch["items"], list) for batch in batches)
    expected = Counter((str(caller.tenant_id), str(caller.user_id)) for caller in callers)
    for body, level in [("first step done", "info"), ("second step failed", "error")]:
        logs = [log for log in receiver.logs if log["body"] == body]
        assert {log["level"] for log in logs} == {level}
        assert {value(log, "logger.name") for log in logs} == {"app.tests.routes"}
        # Every request's records carry its own caller, never a concurrent request's.
        assert Counter((value(log, "tenant_id"), value(log, "user.id")) for log in logs) == (
            expected
        )
    # The ERROR record is an event too, as without Sentry logs.
    receiver.wait_for_event(
        lambda event: (event.get("logentry") or {}).get("message") == "second step failed"
    )


async def test_secrets_in_log_records_never_leave(
    logging_app: FastAPI, receiver: EnvelopeReceiver, owner: Account
) -> None:
    password, api_key = f"pw-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"
    card = "4111 1111 1111 1111"
    async with running(logging_app) as http:
        # Logs "handling password=%s" with the password as the record's argument.
        answer = await http.post("/test/leaky", json={"password": password}, headers=owner.headers)
        assert answer.status_code == 500
        route_logger.warning(
            "charging %s for %s", card, owner.email, extra={"api_key": api_key, "order": 7}
        )
        settle(receiver)  # flushes the SDK's log batcher first

    sent = receiver.raw
    for forbidden in (password, api_key, card, card.replace(" ", ""), owner.email):
        at = sent.find(forbidden.encode())
        assert at < 0, f"{forbidden!r} reached Sentry: {sent[max(0, at - 300) : at + 50]!r}"
    handling = receiver.wait_for_log(lambda log: str(log["body"]).startswith("handling "))
    assert handling["body"] == "handling password=[Filtered]"
    assert value(handling, "tenant_id") == str(owner.tenant_id)
    charging = receiver.wait_for_log(lambda log: str(log["body"]).startswith("charging "))
    assert charging["body"] == "charging [Filtered] for [Filtered]"
    assert value(charging, "api_key") == "[Filtered]"
    assert value(charging, "order") == 7  # what is not secret is kept, typed
    # The template's arguments are sent beside the body by the SDK: never by this app.
    for log in receiver.logs:
        assert not [key for key in log["attributes"] if key.startswith("sentry.message.parameter")]


async def test_with_the_option_off_no_log_is_ever_sent(
    settings: Settings, receiver: EnvelopeReceiver, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentry_env(monkeypatch, dsn=receiver.dsn)  # SENTRY_ENABLE_LOGS unset: off
    async with running(failing_app(settings)) as http:
        assert (await http.get("/test/logged", headers=owner.headers)).status_code == 200
        # The SDK's own logger sends whatever enable_logs says on 2.x; 3.x has no switch.
        sentry_sdk.logger.warning("asked for directly {n}", n=1)
        sentry_sdk.logger.error("asked for directly, as an error")
        settle(receiver)  # flushes the SDK's log batcher first

    sent_types = {item.type for delivery in receiver.deliveries for item in delivery.envelope.items}
    assert "log" not in sent_types, sent_types
    # Records still make events and breadcrumbs, as ever.
    event = receiver.wait_for_event(
        lambda event: (event.get("logentry") or {}).get("message") == "second step failed"
    )
    assert "first step done" in [crumb.get("message") for crumb in event["breadcrumbs"]["values"]]


async def test_the_sdks_own_logger_is_sent_when_the_option_is_on(
    logging_app: FastAPI, receiver: EnvelopeReceiver, owner: Account
) -> None:
    """The counterpart of the test above: the same calls do arrive when asked for."""
    async with running(logging_app):
        sentry_sdk.logger.warning("asked for directly {n}", n=1)
        settle(receiver)  # flushes the SDK's log batcher first
    log = receiver.wait_for_log(lambda log: log["body"] == "asked for directly 1")
    assert log["level"] == "warn"
    assert value(log, "sentry.message.template") == "asked for directly {n}"


async def test_records_below_log_level_are_not_sent(
    settings: Settings, receiver: EnvelopeReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentry_env(monkeypatch, dsn=receiver.dsn, enable_logs="true")
    app = failing_app(settings)  # LOG_LEVEL=INFO
    # A library's logger set more verbose than the app: its records reach the SDK.
    chatty = logging.getLogger(f"tests.chatty.{uuid.uuid4().hex}")
    chatty.setLevel(logging.DEBUG)
    async with running(app):
        chatty.debug("debug detail")
        chatty.info("info line")
        chatty.warning("warning line")
        settle(receiver)  # flushes the SDK's log batcher first
    logged = [log["body"] for log in receiver.logs if value(log, "logger.name") == chatty.name]
    assert logged == ["info line", "warning line"]


@pytest.mark.parametrize("name", ["app.sentry", "uvicorn.error", "uvicorn.access"])
async def test_our_own_and_uvicorns_records_are_neither_logs_nor_events_nor_breadcrumbs(
    logging_app: FastAPI, receiver: EnvelopeReceiver, owner: Account, name: str
) -> None:
    """app.sentry's warnings (a dropped event, an unreachable receiver) would otherwise be sent
    about themselves; uvicorn's lines repeat what the middleware reported."""
    ignored = logging.getLogger(name)

    async def log_then_fail(user: CurrentUser) -> None:
        ignored.info("GET /x 200 from 203.0.113.7")
        ignored.error("Exception in ASGI application")
        raise BoomError("after the ignored records")

    logging_app.add_api_route("/test/ignored", log_then_fail)
    async with running(logging_app) as http:
        answer = await http.get("/test/ignored", headers=owner.headers)
        assert answer.status_code == 500
        settle(receiver)  # flushes the SDK's log batcher first

    assert receiver.logs  # the app's own start-up line, at least: logs were on
    assert [log for log in receiver.logs if value(log, "logger.name") == name] == []
    assert [event for event in receiver.events if event.get("logger") == name] == []
    event = receiver.wait_for_event(lambda event: event["event_id"] == answer.json()["event_id"])
    crumbs = [crumb.get("category") for crumb in event["breadcrumbs"]["values"]]
    assert name not in crumbs
