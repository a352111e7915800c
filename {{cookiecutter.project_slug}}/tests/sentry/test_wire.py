"""Sentry proven on the wire: the real SDK sends to a loopback receiver, and every assertion is
about what arrived there."""

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.models import User
from tests.sentry.helpers import (
    TEST_RELEASE,
    assert_reported_for,
    exception_types,
    failing_app,
    real_events,
    sentry_env,
    settle,
    traces,
    unused_port,
    with_a_logging_probe,
)
from tests.support.helpers import PASSWORD, PROJECT_ROOT, Account, invite, running
from tools.sentry_dev.receiver import EnvelopeReceiver

CLIENT_IP = "203.0.113.7"  # TEST-NET-3: must never appear in what is sent


@pytest.fixture
def reporting_app(
    settings: Settings, receiver: EnvelopeReceiver, monkeypatch: pytest.MonkeyPatch
) -> FastAPI:
    sentry_env(monkeypatch, dsn=receiver.dsn)
    return failing_app(settings)


@pytest.fixture
def tracing_app(
    settings: Settings, receiver: EnvelopeReceiver, monkeypatch: pytest.MonkeyPatch
) -> FastAPI:
    """Every request traced, probes and the sampling table's zeros aside."""
    sentry_env(monkeypatch, dsn=receiver.dsn, traces_sample_rate=1.0)
    return failing_app(settings)


@pytest.fixture
async def reporting(reporting_app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client of an app that reports to the receiver (Sentry on for this test only)."""
    async with running(reporting_app, client_address=(CLIENT_IP, 4321)) as http:
        yield http


async def test_an_unhandled_error_arrives_once_with_request_user_and_tenant(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    response = await reporting.get("/test/boom?page=2", headers=owner.headers)
    assert response.status_code == 500
    event_id = response.json()["event_id"]
    assert response.json() == {"detail": "Internal Server Error", "event_id": event_id}

    settle(receiver)
    [event] = [e for e in real_events(receiver) if "BoomError" in exception_types(e)]
    assert event["event_id"] == event_id
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "BoomError"
    assert exception["value"] == "kaboom"
    frames = exception["stacktrace"]["frames"]
    assert frames[-1]["function"] == "boom"
    assert frames[-1]["filename"].endswith("tests/sentry/helpers.py")
    assert_reported_for(event, owner, "http://testserver/test/boom", "page=2")
    assert event["environment"] == "test"
    assert event["release"] == TEST_RELEASE
    assert event["transaction"] == "tests.sentry.helpers.failing_app.<locals>.boom"
    assert event["level"] == "error"


async def test_client_errors_send_no_event(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    member = await invite(reporting, owner)
    answers = [
        await reporting.get("/nope", headers=owner.headers),
        await reporting.post("/api/v1/items", json={"title": ""}, headers=owner.headers),
        await reporting.get(f"/api/v1/items/{uuid.uuid4()}", headers=owner.headers),
        await reporting.get("/api/v1/users/me", headers={"Authorization": "Bearer nonsense"}),
        await reporting.post("/api/v1/users", json={}, headers=member.headers),
    ]
    assert [answer.status_code for answer in answers] == [404, 422, 404, 401, 403]
    settle(receiver)
    assert real_events(receiver) == []


async def test_a_logged_error_is_an_event_and_info_logs_are_its_breadcrumbs(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    response = await reporting.get("/test/logged", headers=owner.headers)
    assert response.status_code == 200
    event = receiver.wait_for_event(
        lambda e: (e.get("logentry") or {}).get("message") == "second step failed"
    )
    assert event["level"] == "error"
    assert event["logger"] == "app.tests.routes"
    assert event["tags"]["tenant_id"] == str(owner.tenant_id)
    crumbs = [crumb.get("message") for crumb in event["breadcrumbs"]["values"]]
    assert "first step done" in crumbs


async def test_secrets_in_body_headers_cookies_query_and_messages_never_leave(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    tails = {name: uuid.uuid4().hex for name in ("pw", "api", "tok", "cookie", "split")}
    secrets = {name: f"{name}-{tail}" for name, tail in tails.items()}
    secrets["pw"] = f'pw-"\\{tails["pw"]}'  # quotes and backslashes get escaped on the way
    card = "4111 1111 1111 1111"
    body = {
        "password": secrets["pw"],
        "nested": {"apiKey": secrets["api"], "items": [{"client_secret": secrets["api"]}]},
        "card_number": card,
        "note": f"call me at {owner.email}",
    }
    response = await reporting.post(
        # %26 is an & inside the value: the secret must not split into a harmless-looking
        # second parameter.
        f"/test/leaky?token={secrets['tok']}&api_key=a%26{secrets['split']}&page=2",
        json=body,
        headers={
            **owner.headers,
            "X-Api-Key": secrets["api"],
            "X-Forwarded-For": "198.51.100.23",
            "Cookie": f"session={secrets['cookie']}; csrftoken={secrets['cookie']}",
        },
    )
    assert response.status_code == 500
    settle(receiver)

    sent = receiver.raw
    bearer = owner.headers["Authorization"].removeprefix("Bearer ")
    for forbidden in [*tails.values(), bearer, owner.email, CLIENT_IP, "198.51.100.23"]:
        at = sent.find(forbidden.encode())
        assert at < 0, f"{forbidden!r} reached Sentry: {sent[max(0, at - 300) : at + 50]!r}"
    assert card.encode() not in sent
    assert card.replace(" ", "").encode() not in sent

    [event] = [e for e in real_events(receiver) if "BoomError" in exception_types(e)]
    request = event["request"]
    assert request["query_string"] == "token=[Filtered]&api_key=[Filtered]&page=2"
    assert "cookies" not in request
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert headers["authorization"] == headers["cookie"] == headers["x-api-key"] == "[Filtered]"
    assert "ip_address" not in event.get("user", {})
    # What is needed to debug it is still there.
    assert event["user"]["id"] == str(owner.user_id)
    assert event["tags"]["tenant_id"] == str(owner.tenant_id)
    assert event["request"]["url"].endswith("/test/leaky")
    assert event["exception"]["values"][-1]["value"] == (
        "rejected password=[Filtered] token=[Filtered]"
    )


async def test_a_login_that_fails_inside_hashing_does_not_send_the_password(
    admin_engine: AsyncEngine, reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    # A hash pwdlib cannot read (a disabled account, a hash imported from another system):
    # verification raises, with the password in the frames of the failing call.
    async with admin_engine.begin() as connection:  # past the app (and row-level security)
        await connection.execute(
            update(User).where(User.id == owner.user_id).values(hashed_password="!")
        )
    response = await reporting.post(
        "/api/v1/auth/token", data={"username": owner.email, "password": PASSWORD}
    )
    assert response.status_code == 500
    settle(receiver)
    event = receiver.wait_for_event(lambda e: e["event_id"] == response.json()["event_id"])
    assert event["exception"]["values"][-1]["type"] == "UnknownHashError"
    for forbidden in (PASSWORD, PASSWORD.replace(" ", "+"), owner.email):
        assert forbidden.encode() not in receiver.raw


async def test_the_user_email_is_sent_only_when_the_operator_opts_in(
    settings: Settings, receiver: EnvelopeReceiver, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentry_env(monkeypatch, dsn=receiver.dsn, send_user_email=True)
    app = failing_app(settings)
    async with running(app) as http:
        response = await http.get("/test/boom", headers=owner.headers)
        settle(receiver)
    event = receiver.wait_for_event(lambda e: e["event_id"] == response.json()["event_id"])
    assert event["user"] == {"id": str(owner.user_id), "email": owner.email}


async def test_concurrent_requests_of_two_tenants_keep_their_own_context(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account, rival: Account
) -> None:
    callers = [owner if n % 4 < 2 else rival for n in range(50)]
    responses = await asyncio.gather(
        *(
            reporting.get(f"/test/maybe/{n}", headers=caller.headers)
            for n, caller in enumerate(callers)
        )
    )
    settle(receiver)
    events = {event["event_id"]: event for event in real_events(receiver)}
    assert len(events) == 25
    for n, (caller, response) in enumerate(zip(callers, responses, strict=True)):
        if n % 2 == 0:
            assert response.json() == {"tenant_id": str(caller.tenant_id)}
            continue
        event = events[response.json()["event_id"]]
        assert event["exception"]["values"][-1]["value"] == f"odd request {n}"
        assert event["tags"]["tenant_id"] == str(caller.tenant_id)
        assert event["contexts"]["tenant"]["id"] == str(caller.tenant_id)
        assert event["user"]["id"] == str(caller.user_id)


async def test_probe_traffic_sends_no_transaction_and_no_breadcrumb(
    tracing_app: FastAPI, receiver: EnvelopeReceiver, owner: Account
) -> None:
    # GET /health logs here: its INFO records make no breadcrumb, its ERROR is still an event.
    async with running(with_a_logging_probe(tracing_app)) as http:
        for _ in range(10):
            assert (await http.head("/health")).status_code == 200
        assert (await http.get("/api/v1/items", headers=owner.headers)).status_code == 200
        assert (await http.get("/health")).status_code == 200
        settle(receiver)

    event = receiver.wait_for_event(
        lambda e: (e.get("logentry") or {}).get("message") == "health check failed"
    )
    assert event["breadcrumbs"]["values"] == []
    assert event["request"]["url"] == "http://testserver/health"  # a probe's event says so
    assert [trace.name for trace in traces(receiver)] == ["app.api.routes.items.list_items"]


CALLER_TRACE, CALLER_SPAN = "771a43a4192642f0b136d5159a501700", "b3e5d7e3d1f2a4c6"


async def test_traces_follow_the_sampling_table(
    settings: Settings, receiver: EnvelopeReceiver, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Default rate 0: only the routes the table marks critical are traced.
    sentry_env(monkeypatch, dsn=receiver.dsn)
    app = failing_app(settings)
    async with running(app) as http:
        await http.get("/health")
        await http.get("/api/v1/items", headers=owner.headers)
        # The caller did not sample its trace; the table's 1 for logins wins, and the caller's
        # trace is continued.
        login = await http.post(
            "/api/v1/auth/token",
            data={"username": owner.email, "password": "wrong password"},
            headers={"sentry-trace": f"{CALLER_TRACE}-{CALLER_SPAN}-0"},
        )
        assert login.status_code == 401
        settle(receiver)
    [trace] = traces(receiver)
    assert (trace.trace_id, trace.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    assert (trace.name, trace.op, trace.http_status) == (
        "app.api.routes.auth.login",
        "http.server",
        401,
    )
    assert not trace.failed


def _is_query(statement: str | None) -> bool:
    """A statement of the route's own, not the tenant binding of app/db/tenancy.py."""
    return statement is not None and not statement.startswith("SELECT set_config(")


async def test_a_failing_request_is_traced_under_its_endpoint(
    settings: Settings, tracing_app: FastAPI, receiver: EnvelopeReceiver, owner: Account
) -> None:
    async with running(tracing_app) as http:
        answer = await http.get("/test/boom", headers=owner.headers)
        assert answer.status_code == 500
        settle(receiver)
    [trace] = traces(receiver)
    assert (trace.name, trace.source) == (
        "tests.sentry.helpers.failing_app.<locals>.boom",
        "component",
    )
    assert (trace.http_status, trace.failed) == (500, True)
    # The signed-in user was looked up: one SQL span, with the database named. (On PostgreSQL
    # a span before it binds the connection to the tenant: app/db/tenancy.py.)
    [query] = [span for span in trace.spans if _is_query(span.description)]
    assert query.description.startswith("SELECT users.")
    assert (query.op, query.origin, query.parent_span_id) == (
        "db",
        "auto.db.sqlalchemy",
        trace.span_id,
    )
    assert query.data["db.system"] == settings.database_url.split("+")[0].split(":")[0]
    # The error event carries the same query as a breadcrumb, and nothing from before.
    event = receiver.wait_for_event(lambda e: e["event_id"] == answer.json()["event_id"])
    crumbs = [crumb for crumb in event["breadcrumbs"]["values"] if _is_query(crumb["message"])]
    assert [crumb["category"] for crumb in crumbs] == ["query"]
    assert crumbs[0]["message"] == query.description


async def test_an_untraced_request_records_its_queries_as_breadcrumbs_only(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    answer = await reporting.get("/test/boom", headers=owner.headers)
    event = receiver.wait_for_event(lambda e: e["event_id"] == answer.json()["event_id"])
    [crumb] = [crumb for crumb in event["breadcrumbs"]["values"] if _is_query(crumb["message"])]
    assert crumb["category"] == "query"
    assert crumb["message"].startswith("SELECT users.")
    assert str(owner.user_id) not in str(crumb)  # the statement, never its parameters
    settle(receiver)
    traced = [trace.name for trace in traces(receiver)]
    assert not [name for name in traced if name.endswith(".boom")]  # sign-up's and login's only


async def test_a_domain_error_is_grouped_by_its_fingerprint(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    response = await reporting.get("/test/declined", headers=owner.headers)
    event = receiver.wait_for_event(lambda e: e["event_id"] == response.json()["event_id"])
    assert event["fingerprint"] == ["payment-declined"]


def _run_module(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "app.sentry", *args],
        cwd=PROJECT_ROOT,
        env=environment | {"ENVIRONMENT": "test", "SENTRY_RELEASE": TEST_RELEASE} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_check_command_sends_an_event_and_prints_its_id(receiver: EnvelopeReceiver) -> None:
    result = _run_module("check", SENTRY_DSN=receiver.dsn)
    assert result.returncode == 0, result.stderr
    event_id = result.stdout.split()[2]
    event: dict[str, Any] = receiver.wait_for_event(lambda e: e["event_id"] == event_id)
    assert event["release"] == TEST_RELEASE
    assert "Sentry check" in event["message"]


def test_the_check_command_fails_clearly_when_nothing_could_be_sent() -> None:
    port = unused_port()
    closed = _run_module("check", SENTRY_DSN=f"http://key@127.0.0.1:{port}/1")
    assert closed.returncode == 1
    assert "nothing was sent" in closed.stderr
    assert f"127.0.0.1:{port}" in closed.stderr

    unset = _run_module("check")
    assert unset.returncode == 2
    assert unset.stderr.strip() == "error: Sentry is off: SENTRY_DSN is empty"


def test_the_check_command_names_a_malformed_dsn() -> None:
    result = _run_module("check", SENTRY_DSN="http://key@127.0.0.1:9/not-a-project")
    assert result.returncode == 2
    assert "SENTRY_DSN: must end with the numeric project id" in result.stderr
    assert "key@" not in result.stderr  # the DSN's key is never echoed


def test_release_is_the_setting_else_version_and_git_sha(tmp_path: Any) -> None:
    from app import __version__, sentry

    assert sentry.release_name(sentry.SentrySettings(release="2024.1")) == "2024.1"
    unversioned = sentry.SentrySettings(release="")
    assert sentry.release_name(unversioned, tmp_path) == f"{sentry.RELEASE_PREFIX}@{__version__}"

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=tmp_path, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert sentry.release_name(unversioned, tmp_path) == (
        f"{sentry.RELEASE_PREFIX}@{__version__}+{sha}"
    )


async def test_a_storm_of_one_identical_error_sends_a_bounded_number_of_events(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    storm = 150  # more than the budget: a burst of 60 identical events, then one a second
    started = time.monotonic()
    answers = [await reporting.get("/test/boom", headers=owner.headers) for _ in range(storm)]
    refilled = int(time.monotonic() - started) + 1
    settle(receiver)
    assert {answer.status_code for answer in answers} == {500}
    sent = {e["event_id"] for e in real_events(receiver) if "BoomError" in exception_types(e)}
    assert 60 <= len(sent) <= 60 + refilled < storm
    # Every 500 still names an event support can find: its own, or the last one of its kind.
    assert {answer.json()["event_id"] for answer in answers} <= sent


async def test_each_request_is_its_own_trace_or_its_callers(
    reporting: AsyncClient, receiver: EnvelopeReceiver, owner: Account
) -> None:
    # Untraced requests too: their events are linked by trace id in Sentry, so two requests
    # must not share one, and a caller's trace must be the one its request's error joins.
    caller = {"sentry-trace": f"{CALLER_TRACE}-{CALLER_SPAN}-0"}
    answers = [
        await reporting.get("/test/boom", headers=owner.headers),
        await reporting.get("/test/boom", headers=owner.headers),
        await reporting.get("/test/boom", headers=owner.headers | caller),
    ]
    trace_ids = [_trace_id_of(receiver, answer.json()["event_id"]) for answer in answers]
    assert trace_ids[0] != trace_ids[1]
    assert CALLER_TRACE not in trace_ids[:2]
    assert trace_ids[2] == CALLER_TRACE


def _trace_id_of(receiver: EnvelopeReceiver, event_id: str) -> str:
    event = receiver.wait_for_event(lambda e: e["event_id"] == event_id)
    return str(event["contexts"]["trace"]["trace_id"])
