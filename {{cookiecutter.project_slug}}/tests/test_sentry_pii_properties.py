"""Zero PII on the wire, property-based: Hypothesis builds requests and errors that carry random
secrets in every place a request or a handler can put them (JSON and form bodies, query
strings, headers, cookies, exception and log messages, frame locals, breadcrumbs, tags,
contexts, user fields), the real SDK sends what it sends to a loopback receiver, and none of
the secrets may be in the bytes that arrived, in any encoding, while what a developer needs
to debug (route, exception type, user id, tenant id, and a harmless "witness" value in each
place) still is.

`make test` runs the default Hypothesis profile; `make test-long` runs >= 1,000 examples.
"""

import json
import logging
import string
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from urllib.parse import quote, quote_plus

import jwt
import pytest
from fastapi import APIRouter, FastAPI, Request
from httpx import AsyncClient
from hypothesis import given
from hypothesis import strategies as st

from app import sentry
from app.api.deps import CurrentUser
from app.core.config import Settings
from tests.helpers import Account, running, sign_up
from tests.sentry_helpers import failing_app, sentry_settings, settle
from tests.sentry_receiver import EnvelopeReceiver

LEAK_ROUTE = "/test/leak"
route_logger = logging.getLogger("app.tests.leak")


class LeakyError(Exception):
    """What the leaky route raises, its message full of secrets."""


# -- what a scenario is -------------------------------------------------------------------------


@dataclass
class Plan:
    """What the route does with secrets on the server side (the request carries the rest)."""

    error_message: str = ""
    cause_message: str = ""
    info_log: str = ""
    error_log: str = ""
    breadcrumb_message: str = ""
    breadcrumb_data: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    user_email: str = ""
    local_secret: str = ""


@dataclass
class Scenario:
    secrets: list[str] = field(default_factory=list)  # must not arrive, in any encoding
    # A harmless value per place, that must arrive: proof that the place was sent at all.
    witnesses: dict[str, str] = field(default_factory=dict)
    json_body: dict[str, Any] | None = None
    form_body: dict[str, str] | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    plan: Plan = field(default_factory=Plan)


# -- strategies ---------------------------------------------------------------------------------

# Sensitive names as words, spelled below in every common style.
SENSITIVE_WORDS = [
    ("password",),
    ("passwd",),
    ("new", "password"),
    ("pwd",),
    ("api", "key"),
    ("client", "secret"),
    ("refresh", "token"),
    ("access", "token"),
    ("auth", "token"),
    ("ssn",),
    ("card", "number"),
    ("credit", "card"),
    ("cvv",),
    ("private", "key"),
    ("session", "id"),
    ("secret",),
    ("iban",),
    ("credentials",),
]
PLAIN_KEYS = ["title", "comment", "page", "reference", "description"]
# Not Authorization: the request needs it for the caller's own token (the wire tests cover it).
HEADER_NAMES = [
    "Proxy-Authorization",
    "X-Api-Key",
    "X-Auth-Token",
    "X-Refresh-Token",
    "X-Client-Secret",
    "X-CSRF-Token",
    "X-Session-Id",
    "Api-Key",
]


def _spell(words: tuple[str, ...], style: str) -> str:
    if style == "camel":
        return words[0] + "".join(word.title() for word in words[1:])
    if style == "pascal":
        return "".join(word.title() for word in words)
    if style == "upper":
        return "_".join(words).upper()
    separator = {"snake": "_", "kebab": "-", "dotted": ".", "joined": ""}[style]
    return separator.join(words)


SPELLINGS = ["snake", "kebab", "dotted", "joined", "camel", "pascal", "upper"]
sensitive_keys = st.builds(_spell, st.sampled_from(SENSITIVE_WORDS), st.sampled_from(SPELLINGS))


def _tagged(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Secrets with "Q9" inserted somewhere: Hypothesis also tries strings it finds in the
    code under test, and a secret equal to, say, an SDK integration's name would be "found"
    in every event without anything having leaked."""
    return st.tuples(values, st.integers(0, 40)).map(
        lambda drawn: drawn[0][: drawn[1]] + "Q9" + drawn[0][drawn[1] :]
    )


# Characters a token is made of (RFC 6750's b64token): what a secret looks like unquoted.
token_values = _tagged(
    st.text(alphabet=string.ascii_letters + string.digits + "-._~+/", min_size=8, max_size=40)
)
# Anything printable, quotes, backslashes and non-ASCII included: for values that are quoted or
# sit under a sensitive key.
any_values = _tagged(
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=8,
        max_size=40,
    )
).filter(lambda value: value == value.strip())
witnesses = st.text(alphabet=string.ascii_lowercase, min_size=12, max_size=12).map(
    lambda letters: f"w{letters}"
)


def _luhn_check_digit(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 0:  # doubled: the check digit will sit to the right of these
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str(-total % 10)


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet=string.digits, min_size=15, max_size=15))
    number = body + _luhn_check_digit(body)
    separator = draw(st.sampled_from(["", " ", "-"]))
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def _not_loopback(address: IPv4Address | IPv6Address) -> bool:
    # Loopback is the test's own receiver; an IPv4-mapped IPv6 address is shown as IPv4.
    return not address.is_loopback and getattr(address, "ipv4_mapped", None) is None


ip_addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).filter(_not_loopback).map(str)
emails = st.builds(
    "{}@{}.{}".format,
    st.text(alphabet=string.ascii_letters + string.digits + ".+_-", min_size=3, max_size=20),
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=3, max_size=12),
    st.sampled_from(["com", "org", "example", "co.uk", "dev"]),
).filter(lambda email: ".." not in email and not email.startswith("."))


@st.composite
def jwts(draw: st.DrawFn) -> str:
    claims = {"sub": draw(token_values), "tid": str(uuid.UUID(int=draw(st.integers(0, 2**64))))}
    return jwt.encode(claims, draw(token_values) * 4, algorithm="HS256")


@st.composite
def secret_phrases(draw: st.DrawFn, secrets: list[str]) -> str:
    """Free text with one secret in it, in a shape a scrubber can recognise and that a
    developer would plausibly write in a message."""
    shape = draw(
        st.sampled_from(["pair", "quoted", "json", "bearer", "jwt", "email", "card", "ip", "url"])
    )
    key = draw(sensitive_keys)
    if shape == "pair":
        value = draw(token_values)
        text = f"{key}{draw(st.sampled_from(['=', ': ', ' = ', ':']))}{value}"
    elif shape == "quoted":
        value = draw(any_values)
        text = f"{key}={value!r}"
    elif shape == "json":
        value = draw(any_values)
        text = json.dumps({key: value}, ensure_ascii=draw(st.booleans()))
    elif shape == "bearer":
        value = draw(token_values)
        text = f"{draw(st.sampled_from(['Bearer', 'bearer', 'Basic']))} {value}"
    elif shape == "jwt":
        value = draw(jwts())
        text = f"token {value}"
    elif shape == "email":
        value = draw(emails)
        text = f"sent to {value}"
    elif shape == "card":
        value = draw(card_numbers())
        text = f"charged {value}"
    elif shape == "ip":
        value = draw(ip_addresses)
        text = f"client {value} refused"
    else:
        value = draw(token_values)
        text = f"upstream https://svc:{value}@db.internal/x failed"
    secrets.append(value)
    return text


@st.composite
def nested_documents(draw: st.DrawFn, secrets: list[str], depth: int = 0) -> dict[str, Any]:
    """A JSON object with secrets under sensitive keys, at any depth, inside lists too."""
    document: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["secret", "secret", "list", "dict"] if depth < 3 else ["secret"])
        )
        if kind == "secret":
            value = draw(st.one_of(any_values, token_values))
            secrets.append(value)
            document[draw(sensitive_keys)] = value
        elif kind == "list":
            document[draw(st.sampled_from(PLAIN_KEYS))] = [
                draw(nested_documents(secrets, depth + 1)) for _ in range(draw(st.integers(1, 2)))
            ]
        else:
            document[draw(st.sampled_from(PLAIN_KEYS))] = draw(nested_documents(secrets, depth + 1))
    return document


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    scenario = Scenario()
    secrets = scenario.secrets

    def witness(place: str) -> str:
        value = f"{draw(witnesses)}{len(scenario.witnesses)}x"  # unique within the scenario
        scenario.witnesses[place] = value
        return value

    def secret(strategy: st.SearchStrategy[str] = token_values) -> str:
        value = draw(strategy)
        secrets.append(value)
        return value

    # The request.
    if draw(st.booleans()):
        scenario.json_body = {"note": witness("json body"), **draw(nested_documents(secrets))}
    else:
        fields = {draw(sensitive_keys): secret(any_values) for _ in range(draw(st.integers(1, 3)))}
        scenario.form_body = {"note": witness("form body"), **fields}
    scenario.query = [(draw(sensitive_keys), secret()) for _ in range(draw(st.integers(0, 3)))]
    scenario.query.insert(
        draw(st.integers(0, len(scenario.query))), ("note", witness("query string"))
    )
    for name in draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=3, unique=True)):
        cased = "".join(draw(st.sampled_from([c.lower(), c.upper()])) for c in name)
        scenario.headers[cased] = secret()
    scenario.headers[draw(st.sampled_from(["X-Forwarded-For", "X-Real-IP"]))] = secret(ip_addresses)
    scenario.headers["X-Note"] = witness("headers")
    scenario.cookies = {draw(st.sampled_from(["session", "prefs", "theme"])): secret()}

    # What the handler does.
    plan = scenario.plan
    plan.error_message = f"note {witness('exception')}: " + draw(secret_phrases(secrets))
    plan.cause_message = draw(secret_phrases(secrets))
    plan.info_log = f"step {witness('info log')} " + draw(secret_phrases(secrets))
    plan.error_log = f"failed {witness('error log')} " + draw(secret_phrases(secrets))
    plan.breadcrumb_message = f"crumb {witness('breadcrumb')} " + draw(secret_phrases(secrets))
    plan.breadcrumb_data = {
        draw(sensitive_keys): secret(any_values),
        "note": witness("breadcrumb data"),
    }
    plan.tags = {draw(sensitive_keys): secret(), "note": witness("tags")}
    plan.context = {"note": witness("context"), **draw(nested_documents(secrets))}
    plan.user_email = secret(emails)
    plan.local_secret = secret(any_values)
    return scenario


# -- the app under test -------------------------------------------------------------------------

PLANS: dict[str, Plan] = {}


def leaky_app(settings: Settings) -> FastAPI:
    app = failing_app(settings)
    router = APIRouter()

    @router.post(LEAK_ROUTE)
    async def leak(request: Request, user: CurrentUser) -> None:
        plan = PLANS[request.headers["x-scenario"]]
        await request.body()  # as a route with a body parameter does; unread bodies are not sent
        sentry.set_user_context(user.id, user.tenant_id, email=plan.user_email)
        for key, value in plan.tags.items():
            sentry.set_tag(key, value)
        sentry.set_context("order", plan.context)
        sentry.add_breadcrumb(plan.breadcrumb_message, **plan.breadcrumb_data)
        route_logger.info("%s", plan.info_log)
        route_logger.error(plan.error_log)
        password = plan.local_secret  # a local of the failing frame, as real handlers have
        try:
            raise ValueError(plan.cause_message)
        except ValueError as cause:
            raise LeakyError(plan.error_message + f" ({len(password)})") from cause

    app.include_router(router)
    return app


@pytest.fixture
def receiver() -> Iterator[EnvelopeReceiver]:
    with EnvelopeReceiver() as running_receiver:
        yield running_receiver


@pytest.fixture
async def reporting(settings: Settings, receiver: EnvelopeReceiver) -> AsyncIterator[AsyncClient]:
    app = leaky_app(sentry_settings(settings, sentry_dsn=receiver.dsn))
    async with running(app, client_address=("198.51.100.99", 4444)) as http:
        yield http


@pytest.fixture
async def caller(reporting: AsyncClient) -> Account:
    return await sign_up(reporting, "Leaky Ltd")


# -- the property -------------------------------------------------------------------------------


def encodings(value: str) -> set[str]:
    """Every form in which the SDK (JSON, ASCII-escaped or not) or a URL could carry a value."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote_plus(value),
        repr(value)[1:-1],
        json.dumps(repr(value)[1:-1])[1:-1],
    }
    return {form for form in forms if len(form) >= 6}


@given(scenario=scenarios())
async def test_no_secret_reaches_sentry_while_debugging_context_does(
    reporting: AsyncClient, receiver: EnvelopeReceiver, caller: Account, scenario: Scenario
) -> None:
    scenario_id = uuid.uuid4().hex
    PLANS[scenario_id] = scenario.plan
    already_arrived = len(receiver.deliveries)
    body: dict[str, Any] = (
        {"json": scenario.json_body}
        if scenario.json_body is not None
        else {"data": scenario.form_body}
    )
    try:
        response = await reporting.post(
            LEAK_ROUTE,
            params=tuple(scenario.query),
            headers={
                **caller.headers,
                **scenario.headers,
                "Cookie": "; ".join(f"{name}={value}" for name, value in scenario.cookies.items()),
                "X-Scenario": scenario_id,
            },
            **body,
        )
        assert response.status_code == 500
        event_id = response.json()["event_id"]
        settle(receiver)
    finally:
        del PLANS[scenario_id]

    sent = b"\n".join(delivery.body for delivery in receiver.deliveries[already_arrived:])
    for place, value in scenario.witnesses.items():
        assert value.encode() in sent, f"the {place} never arrived: the test would prove nothing"
        sent = sent.replace(value.encode(), b"")  # a secret may be a substring of a witness
    for value in scenario.secrets:
        for form in encodings(value):
            at = sent.find(form.encode())
            assert at < 0, f"{form!r} reached Sentry: {sent[max(0, at - 200) : at + 60]!r}"
    event = receiver.wait_for_event(lambda e: e["event_id"] == event_id)
    assert event["transaction"].endswith("leaky_app.<locals>.leak")
    assert event["exception"]["values"][-1]["type"] == "LeakyError"
    assert event["user"] == {"id": str(caller.user_id)}
    assert event["tags"]["tenant_id"] == str(caller.tenant_id)
