"""Zero PII on the wire, drawn from the envelope inventory: every place in a Sentry envelope
where data from the app or a client can land is a row of the PII inventory in
docs/adr/0002-optional-sentry.md, and each row names the generator here that fills that
place (`PLACES`), or says why nothing from the app can reach it. Adding an integration means
adding a row and a generator; `test_the_inventory_and_the_generators_agree` holds the two
together.

Each example is one request whose every place carries random secrets, shaped as the README
promises (URL-reserved and non-ASCII characters, percent-encoded or not, split across a log
record's arguments, as key=value, JSON, repr and header text), and one harmless "witness"
value. The real SDK sends what it sends to a loopback receiver; no secret may be in what
arrived, in any encoding or inside any decoded string, while every witness and what a
developer needs (route, exception type, user id, tenant id) must be, so a place the test
never reached cannot pass silently. Three places carry no witness of their own: cookies and
frame locals are dropped whole by their rule, and the user's witness is its id; the trace
headers and the span have theirs only when the caller sampled the trace.

`make test` runs the default Hypothesis profile; `make test-long` runs >= 1,000 examples.
"""

import asyncio
import json
import logging
import re
import string
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import httpx
import jwt
import pytest
import sentry_sdk
from fastapi import APIRouter, FastAPI, Request
from httpx import AsyncClient
from hypothesis import event as statistic
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from app import sentry, sentry_scrubbing
from app.api.deps import CurrentUser, SessionDep
from app.core.config import Settings
from tests.sentry.helpers import failing_app, sentry_env, settle
from tests.support.helpers import PROJECT_ROOT, Account, running, sign_up
from tools.sentry_dev.receiver import EnvelopeReceiver

# The SDK's log and metric batcher threads wait with a jitter drawn from the global `random`
# (sentry_sdk/_batcher.py); when one wakes while Hypothesis draws an example, Hypothesis takes
# it for a strategy using `random`. Nothing here does: the app samples with its own generator.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

LEAK_ROUTE = "/test/leak"
route_logger = logging.getLogger("app.tests.leak")
INVENTORY = PROJECT_ROOT / "docs" / "adr" / "0002-optional-sentry.md"


class LeakyError(Exception):
    """What the leaky route raises, its message full of secrets."""


# -- what a scenario is -------------------------------------------------------------------------


@dataclass
class RouteContext:
    """What a place's action can use inside the request."""

    user: Any
    session: Any
    upstream: str  # base URL of a loopback HTTP server


Action = Callable[[RouteContext], Awaitable[None]]


@dataclass
class Scenario:
    traced: bool = False  # the caller sampled the trace: a transaction is sent too
    secrets: list[str] = field(default_factory=list)  # must not arrive, in any encoding
    # A harmless value per place, that must arrive: proof that the place was sent at all.
    witnesses: dict[str, str] = field(default_factory=dict)
    path: str = ""
    json_body: dict[str, Any] | None = None
    form_body: dict[str, str] | None = None
    query: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    actions: list[Action] = field(default_factory=list)  # run by the route, in order
    raise_chain: Callable[[], None] = lambda: None  # the route's last act
    labels: list[str] = field(default_factory=list)  # for --hypothesis-show-statistics


# -- secrets ------------------------------------------------------------------------------------

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


# Characters a token is made of (RFC 6750's b64token): what a bearer token or a header holds.
token_values = _tagged(
    st.text(alphabet=string.ascii_letters + string.digits + "-._~+/", min_size=8, max_size=40)
)
# What an unquoted value may hold in text: every URL-reserved character the README names
# (/ ? # @ : % +) and non-ASCII letters. An unquoted value ends at white space or & , ; ) } ]
# (the README's rule), so those are left to the quoted forms.
bare_values = _tagged(
    st.text(
        alphabet=string.ascii_letters + string.digits + "-._~=/?#@:%+éüßøΩ日本",
        min_size=8,
        max_size=40,
    )
)
# Anything printable, quotes, backslashes, spaces and non-ASCII included: for values that are
# quoted or sit under a sensitive key.
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


# Each shape a secret can take in free text: where its value comes from, and the text around it.
Phrase = Callable[[st.DrawFn, str, str], str]
PHRASES: dict[str, tuple[st.SearchStrategy[str], Phrase]] = {
    "pair": (
        bare_values,
        lambda draw, key, value: f"{key}{draw(st.sampled_from(['=', ': ', ' = ', ':']))}{value}",
    ),
    "encoded": (
        bare_values,
        lambda draw, key, value: (
            f"{key}={quote(value, safe=draw(st.sampled_from(['', '/', '/:@'])))}"
        ),
    ),
    "quoted": (any_values, lambda draw, key, value: f"{key}={value!r}"),
    "json": (
        any_values,
        lambda draw, key, value: json.dumps({key: value}, ensure_ascii=draw(st.booleans())),
    ),
    "dict": (any_values, lambda draw, key, value: f"payload { ({key: value, 'page': 2})!r}"),
    "header": (
        token_values,
        lambda draw, key, value: f"{draw(st.sampled_from(HEADER_NAMES))}: {value}",
    ),
    "bearer": (
        token_values,
        lambda draw, key, value: f"{draw(st.sampled_from(['Bearer', 'bearer', 'Basic']))} {value}",
    ),
    "jwt": (jwts(), lambda draw, key, value: f"token {value}"),
    "email": (emails, lambda draw, key, value: f"sent to {value}"),
    "card": (card_numbers(), lambda draw, key, value: f"charged {value}"),
    "ip": (ip_addresses, lambda draw, key, value: f"client {value} refused"),
    "url": (
        bare_values,
        lambda draw, key, value: f"upstream https://svc:{value}@db.internal/x failed",
    ),
}
SHAPES = list(PHRASES)


@st.composite
def secret_phrases(draw: st.DrawFn, secrets: list[str], shapes: list[str] = SHAPES) -> str:
    """Free text with one secret in it, in a shape the README says the scrubber recognises
    and that a developer would plausibly write in a message."""
    values, phrase = PHRASES[draw(st.sampled_from(shapes))]
    key = draw(sensitive_keys)
    value = draw(values)
    secrets.append(value)
    return phrase(draw, key, value)


@st.composite
def nested_documents(draw: st.DrawFn, secrets: list[str], depth: int = 0) -> dict[str, Any]:
    """A JSON object with secrets under sensitive keys, at any depth, inside lists too."""
    document: dict[str, Any] = {}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["secret", "secret", "list", "dict"] if depth < 3 else ["secret"])
        )
        if kind == "secret":
            value = draw(st.one_of(any_values, bare_values))
            secrets.append(value)
            document[draw(sensitive_keys)] = value
        elif kind == "list":
            document[draw(st.sampled_from(PLAIN_KEYS))] = [
                draw(nested_documents(secrets, depth + 1)) for _ in range(draw(st.integers(1, 2)))
            ]
        else:
            document[draw(st.sampled_from(PLAIN_KEYS))] = draw(nested_documents(secrets, depth + 1))
    return document


# -- the places: one generator each, named as in the inventory's "Proof" column ------------------
#
# A generator draws secrets into the scenario and, for its place, either shapes the request or
# adds an action the route runs. `witness(place)` draws the harmless value that must arrive.

Place = Callable[[st.DrawFn, Scenario, Callable[[str], str]], None]
PLACES: dict[str, Place] = {}


def place(name: str) -> Callable[[Place], Place]:
    def register(generator: Place) -> Place:
        PLACES[name] = generator
        return generator

    return register


def _secret(draw: st.DrawFn, scenario: Scenario, values: st.SearchStrategy[str]) -> str:
    value = draw(values)
    scenario.secrets.append(value)
    return value


@place("request body")
def _request_body(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    if draw(st.booleans()):
        document = draw(nested_documents(scenario.secrets))
        # A key that is itself personal: the SDK's _meta mirrors keys too.
        document[_secret(draw, scenario, emails)] = "kept as a value"
        scenario.json_body = {"note": witness("request body"), **document}
    else:
        fields = {
            draw(sensitive_keys): _secret(draw, scenario, any_values)
            for _ in range(draw(st.integers(1, 3)))
        }
        fields["comment"] = draw(secret_phrases(scenario.secrets))
        scenario.form_body = {"note": witness("request body"), **fields}


@place("query string")
def _query_string(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    query = [
        (draw(sensitive_keys), _secret(draw, scenario, bare_values))
        for _ in range(draw(st.integers(0, 3)))
    ]
    query.append(("comment", draw(secret_phrases(scenario.secrets))))
    query.insert(draw(st.integers(0, len(query))), ("note", witness("query string")))
    scenario.query = query


@place("url path")
def _url_path(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    phrase = draw(secret_phrases(scenario.secrets, ["email", "jwt", "card", "ip"]))
    pair = f"{draw(sensitive_keys)}={_secret(draw, scenario, token_values)}"
    scenario.path = f"{witness('url path')}/{phrase.replace(' ', '/')}/{pair}"


@place("request headers")
def _request_headers(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    for name in draw(st.lists(st.sampled_from(HEADER_NAMES), max_size=3, unique=True)):
        cased = "".join(draw(st.sampled_from([c.lower(), c.upper()])) for c in name)
        scenario.headers[cased] = _secret(draw, scenario, token_values)
    forwarded = draw(st.sampled_from(["X-Forwarded-For", "X-Real-IP"]))
    scenario.headers[forwarded] = _secret(draw, scenario, ip_addresses)
    ascii_shapes = ["header", "bearer", "jwt", "email", "card", "ip"]  # headers are Latin-1
    scenario.headers["X-Comment"] = draw(secret_phrases(scenario.secrets, ascii_shapes))
    scenario.headers["X-Note"] = witness("request headers")


@place("cookies")
def _cookies(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    for name in draw(st.lists(st.sampled_from(["session", "prefs", "theme"]), min_size=1)):
        scenario.cookies[name] = _secret(draw, scenario, token_values)


@place("trace headers")
def _trace_headers(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """A caller's sentry-trace and baggage: the caller's trace id must arrive when it sampled
    the trace; nothing else it put in the baggage may."""
    # A version-4 UUID: no run of digits long enough to pass for a card number drawn here.
    trace_id = draw(st.uuids(version=4)).hex
    if scenario.traced:
        scenario.witnesses["trace headers"] = trace_id
    members = [
        f"sentry-trace_id={trace_id}",
        "sentry-public_key=testkey",
        f"sentry-sampled={str(scenario.traced).lower()}",
        f"sentry-user_id={quote(_secret(draw, scenario, bare_values), safe='')}",
        f"sentry-{draw(sensitive_keys)}={quote(_secret(draw, scenario, token_values))}",
        f"sentry-transaction={quote(draw(secret_phrases(scenario.secrets)), safe='')}",
        f"vendor={quote(_secret(draw, scenario, bare_values), safe='')}",
    ]
    flag = "1" if scenario.traced else "0"
    scenario.headers["sentry-trace"] = f"{trace_id}-{'b' * 16}-{flag}"
    scenario.headers["baggage"] = ",".join(draw(st.permutations(members)))


@place("user fields")
def _user_fields(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """Fields app code might set beside the id; the id itself is checked in the test."""
    email = _secret(draw, scenario, emails)
    extra = {
        "username": _secret(draw, scenario, any_values),
        "name": _secret(draw, scenario, any_values),
        "ip_address": _secret(draw, scenario, ip_addresses),
        draw(sensitive_keys): _secret(draw, scenario, any_values),
    }

    async def act(route: RouteContext) -> None:
        sentry.set_user_context(route.user.id, route.user.tenant_id, email=email)
        sentry_sdk.set_user({"id": str(route.user.id), "email": email, **extra})

    scenario.actions.append(act)


@place("tags")
def _tags(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    tags = {
        draw(sensitive_keys): _secret(draw, scenario, token_values),
        "reference": draw(secret_phrases(scenario.secrets)),
        "note": witness("tags"),
    }

    async def act(route: RouteContext) -> None:
        for key, value in tags.items():
            sentry.set_tag(key, value)

    scenario.actions.append(act)


@place("contexts")
def _contexts(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    values = {
        "note": witness("contexts"),
        "comment": draw(secret_phrases(scenario.secrets)),
        **draw(nested_documents(scenario.secrets)),
    }

    async def act(route: RouteContext) -> None:
        sentry.set_context("order", values)

    scenario.actions.append(act)


@place("breadcrumb")
def _breadcrumb(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    message = f"crumb {witness('breadcrumb')} " + draw(secret_phrases(scenario.secrets))
    data: dict[str, Any] = {
        draw(sensitive_keys): _secret(draw, scenario, any_values),
        "comment": draw(secret_phrases(scenario.secrets)),
        "note": witness("breadcrumb data"),
    }

    async def act(route: RouteContext) -> None:
        sentry.add_breadcrumb(message, **data)

    scenario.actions.append(act)


@st.composite
def log_calls(draw: st.DrawFn, scenario: Scenario, note: str) -> tuple[str, tuple[str, ...]]:
    """A log call's template and arguments, the secret inline, in one argument, or split
    across two (each half a secret of its own)."""
    form = draw(st.sampled_from(["inline", "argument", "split"]))
    scenario.labels.append(f"log call: {form}")
    if form == "inline":
        return f"{note} " + draw(secret_phrases(scenario.secrets)).replace("%", "%%"), ()
    if form == "argument":
        return f"{note} %s", (draw(secret_phrases(scenario.secrets)),)
    first, second = _secret(draw, scenario, bare_values), _secret(draw, scenario, bare_values)
    scenario.secrets.append(first + second)
    return f"{note} {draw(sensitive_keys)}=%s%s", (first, second)


def _log_place(level: int, name: str) -> Place:
    def generate(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
        template, arguments = draw(log_calls(scenario, f"step {witness(name)}"))
        extra = {
            draw(sensitive_keys): _secret(draw, scenario, any_values),
            "comment": draw(secret_phrases(scenario.secrets)),
            "note": witness(f"{name} extra"),
        }

        async def act(route: RouteContext) -> None:
            route_logger.log(level, template, *arguments, extra=extra)

        scenario.actions.append(act)

    return generate


place("log breadcrumb")(_log_place(logging.INFO, "log breadcrumb"))
place("log event")(_log_place(logging.ERROR, "log event"))


@place("sentry logger")
def _sentry_logger(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """sentry_sdk.logger sends a Sentry log whatever enable_logs says (2.x): its body,
    template arguments and attributes pass only through before_send_log."""
    # Concatenated, not an f-string: the template's own braces are placeholders.
    template = witness("sentry logger") + " " + draw(sensitive_keys) + "={value} {comment}"
    value = _secret(draw, scenario, bare_values)
    comment = draw(secret_phrases(scenario.secrets))
    attributes = {
        draw(sensitive_keys): _secret(draw, scenario, any_values),
        "comment": draw(secret_phrases(scenario.secrets)),
        "note": witness("sentry logger attributes"),
    }

    async def act(route: RouteContext) -> None:
        sentry_sdk.logger.warning(template, value=value, comment=comment, attributes=attributes)

    scenario.actions.append(act)


@place("captured message")
def _captured_message(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    message = f"{witness('captured message')} " + draw(secret_phrases(scenario.secrets))
    extra = {
        draw(sensitive_keys): _secret(draw, scenario, any_values),
        "comment": draw(secret_phrases(scenario.secrets)),
        "note": witness("captured message extra"),
    }

    async def act(route: RouteContext) -> None:
        sentry.capture_message(message, "warning", **extra)

    scenario.actions.append(act)


@place("sql statement")
def _sql_statement(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """A statement's parameters are never sent; its text is (here, its witness alias)."""
    statement = text(f"SELECT :value AS {witness('sql statement')}")
    value = _secret(draw, scenario, any_values)

    async def act(route: RouteContext) -> None:
        await route.session.execute(statement, {"value": value})

    scenario.actions.append(act)


@place("outgoing http")
def _outgoing_http(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """An httpx call (the SDK's httpx integration) or a urllib one (its stdlib integration),
    with credentials in the URL, secrets in its query and fragment."""
    path = witness("outgoing http")
    query = [
        (draw(sensitive_keys), _secret(draw, scenario, bare_values)),
        ("comment", draw(secret_phrases(scenario.secrets))),
        ("note", witness("outgoing http query")),
    ]
    fragment = f"{draw(sensitive_keys)}={quote(_secret(draw, scenario, bare_values), safe='')}"
    user, password = draw(token_values), _secret(draw, scenario, bare_values)
    scenario.secrets.append(user)
    with_httpx = draw(st.booleans())
    scenario.labels.append(f"outgoing http: {'httpx' if with_httpx else 'urllib'}")
    suffix = "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in query) + "#" + fragment

    async def act(route: RouteContext) -> None:
        host = route.upstream.removeprefix("http://")
        if with_httpx:
            credentials = f"{quote(user, safe='')}:{quote(password, safe='')}@"
            async with httpx.AsyncClient() as client:
                await client.get(f"http://{credentials}{host}/{path}{suffix}")
        else:  # urllib takes no credentials in the URL
            url = f"{route.upstream}/{path}{suffix}"
            await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).close())  # noqa: S310

    scenario.actions.append(act)


@place("span")
def _span(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """A custom span (`sentry.span`): its name and data travel in the transaction (2.x) or as
    the span's attributes (3.x), sent when traced."""
    name = "step " + draw(secret_phrases(scenario.secrets))
    data = {
        draw(sensitive_keys): _secret(draw, scenario, any_values),
        "comment": draw(secret_phrases(scenario.secrets)),
    }
    if scenario.traced:
        name = f"{witness('span')} {name}"
        data["note"] = witness("span data")

    async def act(route: RouteContext) -> None:
        with sentry.span("app.step", name, **data):
            pass

    scenario.actions.append(act)


@place("metric")
def _metric(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """`sentry.count` (over sentry_sdk.metrics), on by default: its name and attributes pass
    only through before_send_metric."""
    name = f"leak.{witness('metric')}"
    attributes = {
        draw(sensitive_keys): _secret(draw, scenario, any_values),
        "comment": draw(secret_phrases(scenario.secrets)),
        "note": witness("metric attributes"),
    }

    async def act(route: RouteContext) -> None:
        sentry.count(name, 1, **attributes)

    scenario.actions.append(act)


@place("frame locals")
def _frame_locals(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """Never sent (include_local_variables=False): the secret sits in the failing frame."""
    password = _secret(draw, scenario, any_values)

    def fail() -> None:
        secret_copy = password  # a local of the failing frame, as real handlers have
        raise LeakyError(f"frame with {len(secret_copy)} characters")

    scenario.actions.append(_raising_later(fail))


def _raising_later(fail: Callable[[], None]) -> Action:
    """An action that raises, then is swallowed: its frame was walked by nothing yet, and the
    chain's own raise (last) is what reaches Sentry. It only has to run."""

    async def act(route: RouteContext) -> None:
        try:
            fail()
        except LeakyError as error:
            sentry.capture_exception(error)

    return act


@place("exception chain")
def _exception_chain(draw: st.DrawFn, scenario: Scenario, witness: Callable[[str], str]) -> None:
    """The route's last act: an exception with a cause, a context or an exception group
    below it, and a note, every message holding a secret."""
    outer = f"note {witness('exception chain')}: " + draw(secret_phrases(scenario.secrets))
    note = f"{witness('exception note')} " + draw(secret_phrases(scenario.secrets))
    inner = [draw(secret_phrases(scenario.secrets)) for _ in range(draw(st.integers(1, 3)))]
    link = draw(st.sampled_from(["cause", "context", "group"]))
    scenario.labels.append(f"exception chain: {link}")

    def raise_chain() -> None:
        error = LeakyError(outer)
        error.add_note(note)
        below: Exception = (
            ExceptionGroup("several failed", [ValueError(message) for message in inner])
            if link == "group"
            else ValueError(" / ".join(inner))
        )
        try:
            raise below
        except Exception as caught:
            if link == "context":
                raise error  # noqa: B904 - the implicit __context__ is the point
            raise error from caught

    scenario.raise_chain = raise_chain


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    scenario = Scenario(traced=draw(st.booleans()))

    def witness(name: str) -> str:
        value = f"{draw(witnesses)}{len(scenario.witnesses)}x"  # unique within the scenario
        scenario.witnesses[name] = value
        return value

    for generate in PLACES.values():
        generate(draw, scenario, witness)
    return scenario


# -- the app under test -------------------------------------------------------------------------

SCENARIOS: dict[str, Scenario] = {}


def leaky_app(settings: Settings, upstream: str) -> FastAPI:
    app = failing_app(settings)
    router = APIRouter()

    @router.post(LEAK_ROUTE + "/{ref:path}")
    async def leak(ref: str, request: Request, user: CurrentUser, session: SessionDep) -> None:
        scenario = SCENARIOS[request.headers["x-scenario"]]
        await request.body()  # as a route with a body parameter does; unread bodies are not sent
        route = RouteContext(user, session, upstream)
        for act in scenario.actions:
            await act(route)
        scenario.raise_chain()

    app.include_router(router)
    return app


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """A loopback HTTP server for the route's outgoing calls."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
async def reporting(
    settings: Settings, receiver: EnvelopeReceiver, upstream: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncClient]:
    # Between 0 and 1, the caller's sampling decision wins: `traced` scenarios send their
    # transaction, the others none.
    sentry_env(monkeypatch, dsn=receiver.dsn, traces_sample_rate=0.5, enable_logs="true")
    async with running(
        leaky_app(settings, upstream), client_address=("198.51.100.99", 4444)
    ) as http:
        yield http


@pytest.fixture
async def caller(reporting: AsyncClient, receiver: EnvelopeReceiver) -> Account:
    account = await sign_up(reporting, "Leaky Ltd")
    sentry_sdk.flush()  # 3.x batches spans: the sign-up's must not arrive during an example
    settle(receiver)  # the sign-up's own transaction (always traced) is in before any example
    return account


# -- the property -------------------------------------------------------------------------------


# Shorter values (an IPv6 address such as "::") occur in any envelope by chance: SQL casts.
MEANINGFUL = 6


def encodings(value: str) -> set[str]:
    """Every form in which the SDK (JSON, ASCII-escaped or not) or a URL could carry a value."""
    forms = {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        repr(value)[1:-1],
        json.dumps(repr(value)[1:-1])[1:-1],
    }
    return {form for form in forms if len(form) >= MEANINGFUL}


def strings_in(value: object) -> Iterator[str]:
    """Every string of a parsed envelope, keys included, with its URL-decoded readings."""
    if isinstance(value, str):
        yield from {value, unquote(value), unquote_plus(value)}
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


# What the inventory says the project sends; anything else arriving is a place it forgot.
SENT_ITEM_TYPES = {"event", "transaction", "span", "client_report", "trace_metric", "log"}
# How a traced request's spans arrive: one transaction (sentry-sdk 2.x), or streamed (3.x).
TRACE_ITEM_TYPES = {"transaction", "span"}


@given(scenario=scenarios())
async def test_no_secret_reaches_sentry_while_debugging_context_does(
    reporting: AsyncClient, receiver: EnvelopeReceiver, caller: Account, scenario: Scenario
) -> None:
    for label in [f"traced: {scenario.traced}", *scenario.labels]:
        statistic(label)
    scenario_id = uuid.uuid4().hex
    SCENARIOS[scenario_id] = scenario
    already_arrived = len(receiver.deliveries)
    body: dict[str, Any] = (
        {"json": scenario.json_body}
        if scenario.json_body is not None
        else {"data": scenario.form_body}
    )
    try:
        response = await reporting.post(
            f"{LEAK_ROUTE}/{quote(scenario.path, safe='/@=')}",
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
        sentry_sdk.flush()  # metrics are batched: send them now
        settle(receiver)
    finally:
        del SCENARIOS[scenario_id]

    deliveries = receiver.deliveries[already_arrived:]
    sent = b"\n".join(delivery.body for delivery in deliveries)
    for name, value in scenario.witnesses.items():
        assert value.encode() in sent, f"the {name} never arrived: the test would prove nothing"
    for value in scenario.secrets:
        for form in encodings(value):
            at = sent.find(form.encode())
            assert at < 0, f"{form!r} reached Sentry: {sent[max(0, at - 200) : at + 60]!r}"
    readings = [
        reading
        for delivery in deliveries
        for part in (delivery.envelope.headers, *(payload for _, payload in delivery.items))
        for reading in strings_in(part)
    ]
    for value in (value for value in scenario.secrets if len(value) >= MEANINGFUL):
        found = next((reading for reading in readings if value in reading), None)
        assert found is None, f"{value!r} reached Sentry, decoded, in {found!r}"

    # With SENTRY_ENABLE_LOGS on, the route's records at LOG_LEVEL leave as Sentry logs too,
    # their `extra` as attributes, besides the event and its breadcrumbs.
    logs = [
        json.dumps(log)
        for delivery in deliveries
        for kind, payload in delivery.items
        if kind == "log"
        for log in payload.get("items") or []
    ]
    for name in ("log breadcrumb", "log event"):
        [log] = [log for log in logs if f"step {scenario.witnesses[name]}" in log]
        assert scenario.witnesses[f"{name} extra"] in log, f"the {name}'s extra is not in {log}"
        assert str(caller.tenant_id) in log  # the tenant_id attribute
    kinds = {kind for delivery in deliveries for kind, _ in delivery.items}
    assert kinds <= SENT_ITEM_TYPES, kinds
    assert bool(kinds & TRACE_ITEM_TYPES) == scenario.traced
    event = receiver.wait_for_event(lambda e: e["event_id"] == event_id)
    assert event["transaction"].endswith("leaky_app.<locals>.leak")
    assert event["exception"]["values"][-1]["type"] == "LeakyError"
    assert event["user"] == {"id": str(caller.user_id)}
    assert event["tags"]["tenant_id"] == str(caller.tenant_id)


@given(data=st.data())
def test_every_promised_shape_is_masked_whatever_precedes_it(data: st.DataObject) -> None:
    """The text rules alone, without the wire: every shape the README promises, after text
    that may itself end in a sensitive key (a witness once held "dsn" and took the next
    pair's key for its value)."""
    secrets: list[str] = []
    prefix = data.draw(st.sampled_from(["", "note ", "crumb wdsnx: ", "step token ", "pin="]))
    if data.draw(st.booleans()):
        phrase = data.draw(secret_phrases(secrets))
    else:  # a value split across a log record's two arguments, as "password=%s%s" joins it
        first, second = data.draw(bare_values), data.draw(bare_values)
        secrets += [first, second, first + second]
        phrase = f"{data.draw(sensitive_keys)}={first}{second}"
    scrubbed = sentry_scrubbing.scrub_text(prefix + phrase)
    for value in secrets:
        for form in encodings(value):
            assert form not in scrubbed, f"{form!r} survived in {scrubbed!r}"


# -- the inventory and the generators agree ------------------------------------------------------

ROW = re.compile(r"^\|(?P<cells>.+)\|\s*$")


def inventory_rows() -> list[list[str]]:
    """The rows of the PII inventory table in the ADR (header and rule lines left out)."""
    section = INVENTORY.read_text(encoding="utf-8").split("## PII inventory", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if (match := ROW.match(line)) and not set(line) <= set("|-: "):
            rows.append([cell.strip() for cell in match["cells"].split("|")])
    return rows[1:]


def test_the_inventory_and_the_generators_agree() -> None:
    rows = inventory_rows()
    assert len(rows) >= 30, "the inventory lost rows"
    named: set[str] = set()
    for row in rows:
        proof = row[-1]
        if proof.startswith("none:") and len(proof) > len("none: "):
            continue  # a stated reason
        places = set(re.findall(r"`([a-z][a-z ]*[a-z])`", proof))
        assert places, f"row without a generator or a reason: {row}"
        assert places <= PLACES.keys(), f"{row} names generators that do not exist"
        named |= places
    assert named == PLACES.keys(), f"generators no row names: {PLACES.keys() - named}"
    item_types = {row[0].strip("`") for row in rows}
    assert item_types >= SENT_ITEM_TYPES
