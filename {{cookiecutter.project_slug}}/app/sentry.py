"""Optional error tracking with Sentry: fail-open, scrubbed before sending, tenant-aware.

Everything the app does with Sentry goes through this module. Every function is a harmless
no-op until `init_sentry()` has succeeded, so callers never check whether Sentry is on.

    python -m app.sentry check     send a test event to SENTRY_DSN and print its id
    python -m app.sentry release   print the release name the app reports

What leaves the process, and what is scrubbed from it, is described in
docs/adr/0002-optional-sentry.md.
"""

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Hashable, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import Engine

from app import __version__
from app.core.config import Settings, SettingsError, load_settings

try:
    import sentry_sdk
    from sentry_sdk.envelope import Envelope
    from sentry_sdk.integrations.asyncpg import AsyncPGIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber
    from sentry_sdk.tracing import Span
    from sentry_sdk.tracing_utils import record_sql_queries
    from sentry_sdk.transport import Transport
    from sentry_sdk.utils import BadDsn, Dsn
except ImportError:  # the dependency was removed: the app runs without error tracking
    sentry_sdk = None  # type: ignore[assignment]

Event = dict[str, Any]
Level = Literal["fatal", "error", "warning", "info", "debug"]

# Named, not __name__: `python -m app.sentry` runs this file as __main__.
logger = logging.getLogger("app.sentry")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RELEASE_PREFIX = "{{ cookiecutter.project_slug }}"
FILTERED = "[Filtered]"

# ---------------------------------------------------------------------------------------------
# Sampling and noise: one table, first match wins; paths not in it get
# SENTRY_TRACES_SAMPLE_RATE. Paths are raw request paths (the sampler runs before routing).
# ---------------------------------------------------------------------------------------------

# Probes: no transaction and no breadcrumb, whatever the sample rate.
QUIET_PATHS = frozenset({"/health", "/metrics"})
_QUIET_PATH = "|".join(re.escape(path) for path in sorted(QUIET_PATHS))
_QUIET_PATH_IN_TEXT = re.compile(rf"(?<![\w/])(?:{_QUIET_PATH})(?![\w/-])")


@dataclass(frozen=True)
class TraceRule:
    path: re.Pattern[str]
    rate: float
    reason: str


TRACE_RULES: tuple[TraceRule, ...] = (
    TraceRule(re.compile(_QUIET_PATH), 0.0, "probes: thousands a day, nothing to learn"),
    TraceRule(re.compile(r"/api/v1/auth/token"), 1.0, "critical: every login"),
    TraceRule(re.compile(r"/api/v1/tenants"), 1.0, "critical: every sign-up"),
)

# The ASGI scope of the quiet request being served, if any (set by SentryRequestContext).
_quiet_request: ContextVar[dict[str, Any] | None] = ContextVar("quiet_request", default=None)


def trace_rate(path: str, default_rate: float) -> float:
    for rule in TRACE_RULES:
        if rule.path.fullmatch(path):
            return rule.rate
    return default_rate


def sample_rate(path: str, default_rate: float, parent_sampled: Callable[[], bool | None]) -> float:
    """The table's rate, except that between 0 and 1 the caller's decision wins, so that a
    distributed trace stays whole. `parent_sampled` is asked only then: reading it means
    scanning the request headers, which most requests (probes, rate 0 or 1) never need."""
    rate = trace_rate(path, default_rate)
    if 0 < rate < 1 and (parent := parent_sampled()) is not None:
        return 1.0 if parent else 0.0
    return rate


def _traces_sampler(default_rate: float) -> Callable[[dict[str, Any]], float]:
    """The SDK's hook, for transactions started outside SentryRequestContext."""

    def sampler(context: dict[str, Any]) -> float:
        path = str((context.get("asgi_scope") or {}).get("path", ""))
        return sample_rate(path, default_rate, lambda: context.get("parent_sampled"))

    return sampler


def _before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    if _quiet_request.get() is not None or crumb.get("category") == "uvicorn.access":
        # Access-log lines only repeat the event's own request, raw: client address and
        # undecoded query string included.
        return None
    url = (crumb.get("data") or {}).get("url")
    if isinstance(url, str) and urlsplit(url).path in QUIET_PATHS:
        return None
    if _QUIET_PATH_IN_TEXT.search(str(crumb.get("message") or "")):
        return None  # e.g. a log line about a probe
    return crumb


class SentryRequestContext:
    """The request integration: a pure ASGI middleware that stands in for the SDK's Starlette
    and FastAPI integrations, which cost 40-60 % of a small route's throughput whether or not
    anything goes wrong (docs/adr/0003-sentry-performance.md). Per request it only forks the
    isolation scope (so user, tags and breadcrumbs belong to this request alone) and registers
    one event processor; the request's data is read only when an event is actually sent, and
    a transaction is started only for the sampled share of requests. Probes (QUIET_PATHS) get
    none of that: they are the most frequent requests and must cost nothing."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _state.enabled:
            await self.app(scope, receive, send)
        elif scope["path"] in QUIET_PATHS:
            await self._serve_quietly(scope, receive, send)
        else:
            await self._serve(scope, receive, send)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = _BodyTap(receive) if scope["method"] in _METHODS_WITH_BODIES else None
        with sentry_sdk.isolation_scope() as isolation:
            isolation.clear_breadcrumbs()  # this request's own, not start-up's or others'
            isolation.add_event_processor(_request_processor(scope, body))
            transaction = _sampled_transaction(scope)
            receive = body.receive if body else receive
            try:
                if transaction is None:
                    await self.app(scope, receive, send)
                    return
                with sentry_sdk.start_transaction(transaction):
                    try:
                        await self.app(scope, receive, _recording(send))
                    finally:  # a route that raised is named by its endpoint too
                        transaction.name = _endpoint_name(scope) or transaction.name
            except Exception as exc:
                # Reported here, where the request, user and tenant are known; the 500
                # handler (outside this middleware) gets the same event id.
                capture_exception(exc)
                raise

    async def _serve_quietly(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """No scope of its own, no breadcrumbs, no transaction: an event from a probe (its
        failure, an ERROR log) gets the request and an empty trail in _before_send."""
        quiet = _quiet_request.set(scope)
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            capture_exception(exc)
            raise
        finally:
            _quiet_request.reset(quiet)


class _QueryRecorder:
    """SQL breadcrumbs and spans, in place of the SDK's SQLAlchemy integration, which opens a
    span (ids, timestamps, connection data) for every query even when no transaction is
    sampled, only to throw it away. Here an unsampled request gets the breadcrumb alone, a
    sampled one the SDK's own span, and a probe nothing (docs/adr/0003-sentry-performance.md)."""

    _CONTEXT_KEY = "_sentry_query"

    @classmethod
    def listen(cls) -> None:
        if not sqlalchemy_event.contains(Engine, "before_cursor_execute", cls.before):
            sqlalchemy_event.listen(Engine, "before_cursor_execute", cls.before)
            sqlalchemy_event.listen(Engine, "after_cursor_execute", cls.after)
            sqlalchemy_event.listen(Engine, "handle_error", cls.failed)

    @classmethod
    def before(
        cls, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not _state.enabled or _quiet_request.get() is not None:
            return
        if sentry_sdk.get_current_span() is None:
            # The statement only, as the SDK records it: its parameters are never sent.
            data = {"db.executemany": True} if many else {}
            sentry_sdk.add_breadcrumb(message=statement, category="query", data=data)
            return
        # Inside a sampled transaction: the SDK's span, which adds the breadcrumb too.
        recorder = record_sql_queries(
            cursor, statement, None, None, many, span_origin="auto.db.sqlalchemy"
        )
        span = recorder.__enter__()
        if isinstance(span, Span):  # not the experimental streamed spans, which we leave off
            span.set_data("db.system", conn.dialect.name)
            if database := conn.engine.url.database:
                span.set_data("db.name", database)
        setattr(context, cls._CONTEXT_KEY, (recorder, span))

    @classmethod
    def after(
        cls, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        cls._finish(context, failed=False)

    @classmethod
    def failed(cls, exception_context: Any) -> None:
        cls._finish(exception_context.execution_context, failed=True)

    @classmethod
    def _finish(cls, context: Any, failed: bool) -> None:
        recording = getattr(context, cls._CONTEXT_KEY, None) if context is not None else None
        if recording is None:
            return
        setattr(context, cls._CONTEXT_KEY, None)
        recorder, span = recording
        if failed:
            span.set_status("internal_error")
        recorder.__exit__(None, None, None)


_METHODS_WITH_BODIES = frozenset({"POST", "PUT", "PATCH"})
MAX_BODY_BYTES = 10_000  # the SDK's "medium": larger bodies are left out of events


class _BodyTap:
    """Keeps the first MAX_BODY_BYTES of the request body as the app reads it, for an event."""

    __slots__ = ("_receive", "chunks", "size")

    def __init__(self, receive: Callable[[], Any]) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self._receive = receive

    async def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = await self._receive()
        chunk = message.get("body", b"")
        if chunk and self.size <= MAX_BODY_BYTES:
            self.chunks.append(chunk)
            self.size += len(chunk)
        return message

    def data(self, content_type: str) -> Any:
        if not self.chunks or self.size > MAX_BODY_BYTES:
            return None
        raw = b"".join(self.chunks)
        try:
            if "json" in content_type:
                return json.loads(raw)
            if content_type.startswith("application/x-www-form-urlencoded"):
                return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
        except ValueError:
            return None
        return None  # multipart and binary bodies are not sent


def _sampled_transaction(scope: dict[str, Any]) -> Any:
    """A transaction for the share of requests the TRACE_RULES table samples, else None:
    deciding first spares unsampled requests the cost of an unsampled transaction."""
    rate = sample_rate(scope["path"], _state.traces_sample_rate, lambda: _caller_sampled(scope))
    if rate <= 0 or random.random() >= rate:  # noqa: S311 - sampling, not cryptography
        return None
    transaction = sentry_sdk.continue_trace(
        _trace_headers(scope),
        op="http.server",
        name=scope["path"],
        source="url",
        origin="auto.http.asgi",
    )
    transaction.sampled = True
    return transaction


def _caller_sampled(scope: dict[str, Any]) -> bool | None:
    """The caller's decision, from `sentry-trace: <trace>-<span>-<1|0>`, if it made one."""
    for name, value in scope["headers"]:
        if name == b"sentry-trace":
            flag = value.rpartition(b"-")[2]
            return True if flag == b"1" else False if flag == b"0" else None
    return None


def _recording(send: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    async def recording_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            span = sentry_sdk.get_current_span()
            if span is not None:
                span.set_http_status(message["status"])
        await send(message)

    return recording_send


def _header_dict(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


# The fields of Sentry's dynamic sampling context. A caller's `baggage` header becomes the
# `trace` header of every envelope of the trace, which no before_send hook sees: any other
# sentry-* member, and the text of these, would reach Sentry as the caller wrote it.
_DSC_FIELDS = frozenset(
    {"trace_id", "public_key", "org_id", "release", "environment", "transaction"}
    | {"sample_rate", "sample_rand", "sampled"}
)


def _trace_headers(scope: dict[str, Any]) -> dict[str, str]:
    """What continue_trace may read: `sentry-trace`, and the caller's baggage reduced to the
    sampling-context fields, scrubbed. Other vendors' members are kept for propagation
    onward; the SDK never sends them to Sentry."""
    headers = {}
    for name, value in _header_dict(scope).items():
        if name == "sentry-trace":
            headers[name] = value
        elif name == "baggage":
            headers[name] = ",".join(filter(None, map(_trusted_member, value.split(","))))
    return headers


def _trusted_member(member: str) -> str:
    key, _, value = member.strip().partition("=")
    if not key.startswith("sentry-"):
        return member.strip()
    if key.removeprefix("sentry-") not in _DSC_FIELDS:
        return ""
    return f"{key}={quote(scrub_text(unquote(value)), safe='')}"


def _endpoint_name(scope: dict[str, Any]) -> str | None:
    endpoint = scope.get("endpoint")  # set by Starlette's router on the shared scope
    if endpoint is None:
        return None
    return f"{endpoint.__module__}.{endpoint.__qualname__}"


def _request_processor(
    scope: dict[str, Any], body: _BodyTap | None
) -> Callable[[Any, dict[str, Any]], Any]:
    # Any: the SDK types events as a private TypedDict.
    def processor(event: Any, hint: dict[str, Any]) -> Any:
        headers = _header_dict(scope)
        host = headers.get("host") or f"{scope['server'][0]}:{scope['server'][1]}"
        path = f"{scope.get('root_path', '')}{scope['path']}"
        request: dict[str, Any] = {
            "method": scope["method"],
            "url": f"{scope.get('scheme', 'http')}://{host}{path}",
            # Raw, still percent-encoded: decoded, an encoded & inside a secret would split it
            # into a harmless-looking second parameter before the scrubber sees it.
            "query_string": (scope.get("query_string") or b"").decode("latin-1"),
            "headers": headers,
        }
        if body is not None and (data := body.data(headers.get("content-type", ""))) is not None:
            request["data"] = data
        event["request"] = {**request, **(event.get("request") or {})}
        if event.get("type") != "transaction" and (name := _endpoint_name(scope)):
            event["transaction"] = name
            event["transaction_info"] = {"source": "component"}
        return event

    return processor


def _before_send_transaction(event: Event, hint: dict[str, Any]) -> Event | None:
    path = urlsplit(str((event.get("request") or {}).get("url") or "")).path
    if path in QUIET_PATHS:
        return None
    return _scrubbed_or_dropped(event)


# ---------------------------------------------------------------------------------------------
# Scrubbing. The SDK's EventScrubber runs first (exact key names, recursively); this pass runs
# after it on the serialised event and reaches what it does not: any key that *contains* a
# sensitive word, query strings, messages, exception values, tags, contexts, and secrets that
# show themselves by their shape (bearer tokens, JWTs, card numbers, e-mail addresses).
# ---------------------------------------------------------------------------------------------

# Keys the SDK's EventScrubber removes in addition to its DEFAULT_DENYLIST (exact, any case).
EXTRA_DENYLIST = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "secret_key",
    "private_token",
    "x-api-key",
    "x-auth-token",
    "api-key",
    "jwt",
    "dsn",
    "ssn",
    "card_number",
    "cardnumber",
    "credit_card",
    "cvv",
    "cvc",
    "iban",
    "passphrase",
)

# Words that make a key sensitive; `_` stands for an optional separator, so "api_key" also
# matches apiKey, api-key, "api key" and api.key. One list serves keys and key=value text alike.
_SENSITIVE_WORDS = (
    *("pass_w", "pass_phrase", "pass_code", "pwd", "secret", "token"),
    *("api_key", "access_key", "private_key", "authoriz", "auth(?!or)", "cookie", "session"),
    *("csrf", "xsrf", "credential", "signature", "dsn", "ssn", "social_security", "baggage"),
    *("card_number", "credit_card", "cc_number", "cvv", "cvc", "iban", "totp", "mfa", "pin_code"),
)
_SENSITIVE_WORD = "|".join(word.replace("_", r"[\s_.\-]?") for word in _SENSITIVE_WORDS)
# A key is sensitive when, lower-cased and without separators, it contains one of the words
# or is one of a few names too short to look for inside others.
_SENSITIVE_KEY = re.compile(rf"{_SENSITIVE_WORD}|^pass$|^otp|otp$|^pin$")
_KEY_SEPARATORS = re.compile(r"[\s_.\-]")

# key=value or key: value inside free text (query strings, reprs, log messages, JSON text).
_SECRET_PAIR = re.compile(
    # (?<!…): a key starts a token; without it every position inside a word is retried.
    rf"(?i)(?<![\w.-])(?P<key>[\w.-]*(?:{_SENSITIVE_WORD})[\w.-]*)"
    r"(?P<sep>[\"']?\s*[=:]\s*)"
    # The value, after any chained keys ("dsn: password: x", 'note: {"token": "…"}'): masked
    # alone, such a key would leave its own value behind, past the end of the match.
    r"(?P<value>(?:[\"'{\[]*"  # not an f-string: its doubled brace would read as Jinja
    rf"[\w.-]*(?:{_SENSITIVE_WORD})[\w.-]*[\"']?\s*[=:]\s*)*"
    r"(?:\[Filtered\]|(?:bearer|basic|token|digest|apikey|api-key)\s+\S+"
    r"|\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'|[^\s&,;)}\]]+))"
)
# Credentials in a URL: with a password, everything from :// to the URL's last @, since a
# password written unencoded may hold / ? # : or @; a bare user name (often a token) up to @.
_URL_CREDENTIALS = re.compile(r"(?<=://)(?:[^\s/?#@:]*:\S*|[^\s/?#@:]+)@")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]{8,}")
_JWT = re.compile(r"\beyJ[\w-]+\.[\w-]+\.[\w-]*")
# \w: internationalised domains too. The last label starts with a letter, as every top-level
# domain does, so a release such as "acme_backend@0.1.0" is not taken for an address.
_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_][\w-]*")
# A card number stands alone: inside a longer token (a UUID, a hex id) a run of digits such as
# "22962468-1422-4" passes the Luhn check one time in ten, and the id would be garbled.
_CARD_CANDIDATE = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9A-Za-z]-)(?:\d[ -]?){12,18}\d(?![0-9A-Za-z]|-[0-9A-Za-z])"
)
# Candidates only: each is confirmed by the ipaddress module before it is masked.
_IPV4_CANDIDATE = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])")
_IPV6_CANDIDATE = re.compile(r"(?<![\w.:])[0-9A-Fa-f]*:[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(?![\w.:])")

# Parts of an event that hold no user data: left alone so the scrubber cannot garble them.
_STRUCTURAL_KEYS = frozenset(
    {
        *("sdk", "modules", "debug_meta", "release", "environment"),
        *("event_id", "trace_id", "span_id", "parent_span_id", "timestamp", "start_timestamp"),
        # A stack frame's code identifiers: where the code is, not what a user sent.
        *("filename", "abs_path", "module", "function", "lineno", "colno", "in_app"),
    }
)


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(_KEY_SEPARATORS.sub("", key.lower())))


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _mask_card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return FILTERED if _luhn_valid(digits) else match.group()


def _mask_ip(match: re.Match[str]) -> str:
    candidate = match.group()
    for address, port in ((candidate, ""), candidate.rpartition(":")[::2]):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            continue
        return FILTERED + (f":{port}" if port else "")
    return candidate  # a time of day, a version: not an address


def _mask_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match.group('key')}{match.group('sep')}{quote}{FILTERED}{quote}"


# Something every shape above needs (a digit, an @, a sensitive word, eyJ, an auth scheme,
# a %-escape or an IPv6-like :x:): most strings of an event have none, and skip the passes.
_MAYBE_SECRET = re.compile(rf"(?i)\d|@|%|eyJ|bearer|basic|:[0-9a-f.]*:|{_SENSITIVE_WORD}")


def scrub_text(text: str) -> str:
    """Remove secrets that show themselves by their shape, wherever they appear in a string,
    percent-encoded ones included."""
    if not _MAYBE_SECRET.search(text):
        return text
    scrubbed = _scrub_shapes(text)
    if "%" in scrubbed:
        decoded = unquote(scrubbed)
        rescrubbed = _scrub_shapes(decoded)
        if rescrubbed != decoded:  # something was hiding behind the encoding
            return rescrubbed
    return scrubbed


def _scrub_shapes(text: str) -> str:
    # Each pass only where its telltale character is: a pattern tried at every position of
    # every string cost milliseconds per event.
    if "@" in text:
        text = _URL_CREDENTIALS.sub(f"{FILTERED}@", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)} {FILTERED}", text)
    if "eyJ" in text:
        text = _JWT.sub(FILTERED, text)
    text = _SECRET_PAIR.sub(_mask_pair, text)
    if _DIGIT.search(text):
        text = _CARD_CANDIDATE.sub(_mask_card, text)
        text = _IPV4_CANDIDATE.sub(_mask_ip, text)
    if ":" in text:
        text = _IPV6_CANDIDATE.sub(_mask_ip, text)
    if "@" in text:
        text = _EMAIL.sub(FILTERED, text)
    return text


_DIGIT = re.compile(r"\d")


def scrub_query_string(query: str) -> str:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        return scrub_text(query)
    return urlencode(
        [(key, FILTERED if is_sensitive_key(key) else scrub_text(value)) for key, value in pairs],
        safe="[]",
    )


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[0], str) and is_sensitive_key(value[0]):
            # A (name, value) pair, as in raw ASGI headers. The "name" may also be the SDK's
            # repr of a dict nested too deep to serialise, secrets and all: scrub it as text.
            return [scrub_text(value[0]), FILTERED]
        return [_scrub(item) for item in value]
    if isinstance(value, dict):
        # Keys too: a JSON body or a context may use an e-mail address or a token as a key.
        return {_scrub_key(key): _scrub_entry(key, item) for key, item in value.items()}
    return value


def _scrub_key(key: object) -> object:
    return scrub_text(key) if isinstance(key, str) and key not in _STRUCTURAL_KEYS else key


def _scrub_meta(meta: Any) -> Any:
    """`_meta` mirrors the event's own keys down to what the SDK trimmed or filtered: its
    keys are scrubbed as the event's are, its annotations (under "") kept."""
    if not isinstance(meta, dict):
        return meta
    return {
        key: item if key == "" else _scrub_meta(item)
        for key, item in ((_scrub_key(key), item) for key, item in meta.items())
    }


# Query strings wherever the SDK puts them (the request's, an outgoing call's query and
# fragment): parsed as such, so that "+" is a space and an encoded "&" stays inside its value.
_QUERY_KEYS = frozenset({"query_string", "http.query", "http.fragment"})


def _scrub_entry(key: object, value: Any) -> Any:
    if key in _STRUCTURAL_KEYS:
        return value
    if key == "_meta":
        return _scrub_meta(value)
    if key in _QUERY_KEYS and isinstance(value, str):
        return scrub_query_string(value)
    if isinstance(key, str) and value is not None and is_sensitive_key(key):
        return FILTERED
    return _scrub(value)


_LOG_PARAMETER = "sentry.message.parameter."
_DSC = "dynamic_sampling_context"


def scrub_event(event: Event, *, keep_user_email: bool = False) -> Event:
    """Our pass over a serialised event (the SDK's EventScrubber has already run)."""
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        # A log record's arguments, sent beside its formatted message: the secret that
        # "password=%s" shows as password=[Filtered] would sit here raw, with no key or shape
        # to tell. The template (`message`) and `formatted` say all a developer needs.
        logentry.pop("params", None)
    attributes = event.get("attributes")
    if isinstance(attributes, dict):  # a Sentry log's template arguments, likewise
        for key in [key for key in attributes if str(key).startswith(_LOG_PARAMETER)]:
            del attributes[key]
    trace = (event.get("contexts") or {}).get("trace")
    if isinstance(trace, dict) and isinstance(trace.get(_DSC), dict):
        # Becomes the envelope's `trace` header: the sampling fields only, whoever started
        # the trace (SentryRequestContext already trims a caller's baggage).
        trace[_DSC] = {k: v for k, v in trace[_DSC].items() if k in _DSC_FIELDS}
    user = event.get("user")
    email = None
    if isinstance(user, dict):
        # Who, not what they are called: the id alone (and the e-mail, when the operator
        # opted in). A username, name or address that app code sets goes no further.
        email = user.get("email") if keep_user_email else None
        event["user"] = {"id": user["id"]} if "id" in user else {}
    scrubbed: Event = _scrub(event)
    if email is not None:
        scrubbed["user"] = {**scrubbed["user"], "email": email}  # the operator opted in
    return scrubbed


def _scrubbed_or_dropped(event: Event) -> Event | None:
    try:
        return scrub_event(event, keep_user_email=_state.send_user_email)
    except Exception:  # never send what could not be scrubbed
        logger.warning("Sentry event dropped: scrubbing failed", exc_info=True)
        return None


def _before_send_telemetry(item: Any, hint: dict[str, Any]) -> Any:
    """A metric or a Sentry log: attributes and text, scrubbed by the same rules."""
    return _scrubbed_or_dropped(item)


def _before_send(event: Event, hint: dict[str, Any]) -> Event | None:
    if (probe := _quiet_request.get()) is not None:
        # Runs in the probe's own context: its request, and none of the process's trail.
        event["breadcrumbs"] = {"values": []}
        event = _request_processor(probe, None)(event, hint)
    exc_info = hint.get("exc_info")
    grouping = getattr(exc_info[1], "sentry_fingerprint", None) if exc_info else None
    if grouping and "fingerprint" not in event:
        event["fingerprint"] = [str(part) for part in grouping]
    return _scrubbed_or_dropped(event)


# ---------------------------------------------------------------------------------------------
# Grouping for domain errors.
# ---------------------------------------------------------------------------------------------


def fingerprint(*parts: object) -> list[str]:
    """Group events by these parts instead of by stack trace.

    Pass it to capture_exception/capture_message, or give a domain exception class a
    `sentry_fingerprint` attribute so that even uncaught ones are grouped that way:

        class PaymentDeclined(Exception):
            sentry_fingerprint = fingerprint("payment-declined")
    """
    return [str(part) for part in parts]


# ---------------------------------------------------------------------------------------------
# Start-up and shutdown.
# ---------------------------------------------------------------------------------------------


def _error_kind(exc: BaseException) -> tuple[str, str, str, int]:
    """What makes two errors the same: type, message and the line that raised."""
    traceback = exc.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code.co_filename if traceback else ""
    line = traceback.tb_lineno if traceback else 0
    return type(exc).__qualname__, str(exc)[:200], code, line


class RepeatBudget:
    """A storm of one identical error must not send thousands of identical events (nor spend
    ~10 ms of CPU building each): every kind of error gets `burst` events at once, refilled at
    `per_minute`. Past that, a repeat is neither built nor sent, and the 500 it causes answers
    with the id of the last event sent for that kind, which is the same issue in Sentry."""

    def __init__(self, burst: int = 60, per_minute: float = 60, kinds: int = 1000) -> None:
        self.burst = burst
        self.refill_per_second = per_minute / 60
        self.kinds = kinds
        self._buckets: dict[Hashable, tuple[float, float, str | None]] = {}  # tokens, at, last
        self._lock = threading.Lock()

    def last_event_if_over_budget(self, kind: Hashable, now: float | None = None) -> str | None:
        now = time.monotonic() if now is None else now
        with self._lock:
            # Popped and put back, so the dict runs from the least recently seen kind.
            tokens, at, last = self._buckets.pop(kind, (self.burst, now, None))
            tokens = min(self.burst, tokens + (now - at) * self.refill_per_second)
            spend = tokens >= 1 or last is None
            self._buckets[kind] = (tokens - 1 if spend else tokens, now, last)
            if len(self._buckets) > self.kinds:  # many kinds at once: forget the stalest
                del self._buckets[next(iter(self._buckets))]
            return None if spend else last

    def sent(self, kind: Hashable, event_id: str | None) -> None:
        with self._lock:
            if (bucket := self._buckets.get(kind)) is not None:
                self._buckets[kind] = (*bucket[:2], event_id)


@dataclass
class _State:
    enabled: bool = False
    send_user_email: bool = False
    traces_sample_rate: float = 0.0
    repeats: RepeatBudget = field(default_factory=RepeatBudget)


_state = _State()


def is_enabled() -> bool:
    return _state.enabled


def _git_sha(directory: Path) -> str | None:
    """The commit the code was deployed from, when it runs from a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - git from PATH
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,40}", sha) else None


def release_name(settings: Settings, directory: Path = PROJECT_ROOT) -> str:
    """SENTRY_RELEASE, else <project>@<version>, plus +<git sha> when there is a checkout."""
    if settings.sentry_release.strip():
        return settings.sentry_release.strip()
    sha = _git_sha(directory)
    return f"{RELEASE_PREFIX}@{__version__}" + (f"+{sha}" if sha else "")


def _why_off(settings: Settings) -> str | None:
    if sentry_sdk is None:
        return "sentry-sdk is not installed (pip install 'sentry-sdk[fastapi]')"
    if settings.sentry_problems:
        return "; ".join(settings.sentry_problems)
    if not settings.sentry_dsn.get_secret_value():
        return "SENTRY_DSN is empty"
    return None


def _options(settings: Settings) -> dict[str, Any]:
    denylist = [*DEFAULT_DENYLIST, *EXTRA_DENYLIST]
    if not settings.sentry_send_user_email:
        denylist.append("email")
    return {
        "dsn": settings.sentry_dsn.get_secret_value(),
        "environment": settings.sentry_environment.strip() or settings.environment,
        "release": release_name(settings),
        "debug": settings.sentry_debug,
        # send_default_pii is left unset, which means off (2.75 warns when it is set): no
        # client IP, cookies or Authorization/Cookie headers are attached.
        "integrations": [LoggingIntegration(level=logging.INFO, event_level=logging.ERROR)],
        # SentryRequestContext and _QueryRecorder do their work, at a fraction of the cost.
        "disabled_integrations": [
            StarletteIntegration(),
            FastApiIntegration(),
            SqlalchemyIntegration(),
            AsyncPGIntegration(),  # every query is recorded once, through SQLAlchemy
        ],
        "event_scrubber": EventScrubber(denylist=denylist, recursive=True),
        # No frame locals: they hold raw request bodies, ASGI scopes and partials whose reprs
        # carry passwords in no recognisable shape. Stack traces and source lines stay.
        "include_local_variables": False,
        "before_send": _before_send,
        "before_send_transaction": _before_send_transaction,
        # sentry_sdk.metrics (on by default since 2.44) and sentry_sdk.logger (sent whatever
        # enable_logs says) pass through these hooks alone, never through before_send.
        "before_send_metric": _before_send_telemetry,
        "before_send_log": _before_send_telemetry,
        "before_breadcrumb": _before_breadcrumb,
        "traces_sampler": _traces_sampler(settings.sentry_traces_sample_rate),
        # Continuous profiling, only while a sampled trace runs (the transaction-based
        # profiles_sample_rate is deprecated in sentry-sdk 2.x).
        "profile_session_sample_rate": settings.sentry_profiles_sample_rate,
        "profile_lifecycle": "trace",
        "shutdown_timeout": settings.sentry_shutdown_timeout,
    }


def _warn_if_unreachable(dsn: str, timeout: float) -> None:
    """One log line when nothing listens at the DSN's address; Sentry stays on, since the
    SDK sends again as soon as the receiver is back. Runs in a thread: start-up never waits."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        logger.warning(
            "Sentry receiver %s:%s is unreachable (%s); events are dropped until it answers",
            host,
            port,
            exc.strerror or type(exc).__name__,
        )


def init_sentry(settings: Settings) -> bool:
    """Start error tracking. Returns False, after one log line saying why, when it stays off;
    never raises: the app must serve with or without Sentry."""
    _state.enabled = False
    options: dict[str, Any] = {}
    reason = _why_off(settings)
    if reason is None:
        try:
            options = _options(settings)
            ignore_logger(logger.name)  # our own warnings must not become events
            # "Exception in ASGI application": every exception uvicorn logs there went through
            # the 500 handler, which reported it; building the same event twice cost a third
            # of the error path.
            ignore_logger("uvicorn.error")
            # Access-log lines only repeat the request an event already describes (client
            # address and raw query string included); ignored before any record is built.
            ignore_logger("uvicorn.access")
            sentry_sdk.init(**options)  # raises BadDsn for a DSN it cannot parse
            _QueryRecorder.listen()
        except BadDsn:
            reason = "SENTRY_DSN is not a valid DSN (https://PUBLIC_KEY@HOST/PROJECT_ID)"
        except Exception as exc:  # fail-open: a broken SDK must not stop the app
            reason = f"initialisation failed ({type(exc).__name__})"
    if reason is not None:
        logger.warning("Sentry is off: %s", reason)
        return False
    _state.enabled = True
    _state.send_user_email = settings.sentry_send_user_email
    _state.traces_sample_rate = settings.sentry_traces_sample_rate
    _state.repeats = RepeatBudget()  # each start with a full budget
    threading.Thread(
        target=_warn_if_unreachable,
        args=(settings.sentry_dsn.get_secret_value(), settings.sentry_shutdown_timeout),
        name="sentry-reachability",
        daemon=True,
    ).start()
    logger.info(
        "Sentry is on: environment=%s release=%s traces=%s",
        options["environment"],
        options["release"],
        settings.sentry_traces_sample_rate,
    )
    return True


async def shutdown(wait_seconds: float) -> None:
    """Send what is queued, waiting at most `wait_seconds`, then stop the client. The wait
    runs in a thread, so the loop stays free to finish the last responses meanwhile."""
    if not _state.enabled:
        return
    _state.enabled = False
    await asyncio.to_thread(sentry_sdk.get_client().close, timeout=wait_seconds)
    sentry_sdk.get_global_scope().set_client(None)


# ---------------------------------------------------------------------------------------------
# Context and capture: what the rest of the app calls. No-ops while Sentry is off.
# ---------------------------------------------------------------------------------------------


def set_user_context(user_id: object, tenant_id: object, email: str | None = None) -> None:
    """Who is calling, for this request only (the SDK forks an isolation scope per request).
    The e-mail is kept only when SENTRY_SEND_USER_EMAIL is on."""
    if not _state.enabled:
        return
    user: dict[str, str] = {"id": str(user_id)}
    if email and _state.send_user_email:
        user["email"] = email
    sentry_sdk.set_user(user)
    sentry_sdk.set_tag("tenant_id", str(tenant_id))
    sentry_sdk.set_context("tenant", {"id": str(tenant_id)})


def clear_user_context() -> None:
    if not _state.enabled:
        return
    sentry_sdk.set_user(None)
    sentry_sdk.get_isolation_scope().remove_tag("tenant_id")
    sentry_sdk.get_isolation_scope().remove_context("tenant")


def capture_exception(
    exc: BaseException, *, fingerprint: Sequence[str] | None = None, **extra: Any
) -> str | None:
    """Report an exception; returns the event id (None when Sentry is off or it was dropped)."""
    if not _state.enabled:
        return None
    if (reported := getattr(exc, _EVENT_ID, None)) is not None:
        return str(reported)  # already reported on its way out of the request
    kind = _error_kind(exc)
    event_id = _state.repeats.last_event_if_over_budget(kind)
    if event_id is None:
        with sentry_sdk.new_scope() as scope:
            _decorate(scope, fingerprint, extra)
            event_id = sentry_sdk.capture_exception(exc)
        _state.repeats.sent(kind, event_id)
    with contextlib.suppress(AttributeError):  # a few builtin exceptions take no attributes
        setattr(exc, _EVENT_ID, event_id)
    return event_id


_EVENT_ID = "__sentry_event_id__"


def capture_message(
    message: str,
    level: Level = "info",
    *,
    fingerprint: Sequence[str] | None = None,
    **extra: Any,
) -> str | None:
    if not _state.enabled:
        return None
    with sentry_sdk.new_scope() as scope:
        _decorate(scope, fingerprint, extra)
        return sentry_sdk.capture_message(message, level=level)


def _decorate(scope: Any, grouping: Sequence[str] | None, extra: dict[str, Any]) -> None:
    if grouping:
        scope.fingerprint = list(grouping)
    for key, value in extra.items():
        scope.set_extra(key, value)


def add_breadcrumb(message: str, category: str = "app", level: Level = "info", **data: Any) -> None:
    if _state.enabled:
        sentry_sdk.add_breadcrumb(message=message, category=category, level=level, data=data)


def set_tag(key: str, value: str | int | float | bool) -> None:
    if _state.enabled:
        sentry_sdk.set_tag(key, value)


def set_context(name: str, values: dict[str, Any]) -> None:
    if _state.enabled:
        sentry_sdk.set_context(name, values)


# ---------------------------------------------------------------------------------------------
# python -m app.sentry check | release
# ---------------------------------------------------------------------------------------------


def _synchronous_transport(options: dict[str, Any], timeout: float) -> Any:
    """Built on demand: the class derives from the SDK's, which may not be installed."""

    class SynchronousTransport(Transport):
        """Sends each envelope at once and remembers the answer, so `check` can tell the
        operator whether the event was accepted (the SDK's own transport sends in the
        background and keeps failures to itself)."""

        def __init__(self, options: dict[str, Any], timeout: float) -> None:
            super().__init__(options)
            self.dsn = str(options["dsn"])
            self.timeout = timeout
            self.outcomes: list[str] = []
            self.failures: list[str] = []

        def capture_envelope(self, envelope: Envelope) -> None:
            auth = Dsn(self.dsn).to_auth(client=f"{RELEASE_PREFIX}-check")
            request = urllib.request.Request(  # noqa: S310 - the URL comes from the DSN
                auth.get_api_url(),
                data=envelope.serialize(),
                headers={
                    "Content-Type": "application/x-sentry-envelope",
                    "X-Sentry-Auth": auth.to_header(),
                },
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    self.outcomes.append(f"HTTP {response.status}")
            except urllib.error.HTTPError as exc:
                self.failures.append(f"the receiver answered HTTP {exc.code} {exc.reason}")
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                self.failures.append(f"could not reach {auth.get_api_url()}: {reason}")

    return SynchronousTransport(options, timeout)


def check(settings: Settings) -> int:
    """Send one test event through the full pipeline (scrubbing included) and report."""
    reason = _why_off(settings)
    if reason is not None:
        print(f"error: Sentry is off: {reason}", file=sys.stderr)
        return 2
    try:
        dsn = Dsn(settings.sentry_dsn.get_secret_value())
    except BadDsn:
        print("error: SENTRY_DSN is not a valid DSN", file=sys.stderr)
        return 2
    options = _options(settings) | {"integrations": [], "default_integrations": False}
    transport = _synchronous_transport(options, timeout=settings.sentry_shutdown_timeout)
    sentry_sdk.init(**options, transport=transport)
    event_id = sentry_sdk.capture_message(
        f"Sentry check from {RELEASE_PREFIX} ({options['release']})", level="info"
    )
    sentry_sdk.flush(timeout=settings.sentry_shutdown_timeout)
    target = f"{dsn.scheme}://{dsn.host}:{dsn.port}/{dsn.project_id}"
    if transport.failures or not transport.outcomes or event_id is None:
        problem = "; ".join(transport.failures) or "the event was dropped before sending"
        print(f"error: nothing was sent to {target}: {problem}", file=sys.stderr)
        return 1
    print(f"sent event {event_id} to {target} ({transport.outcomes[-1]})")
    return 0


def main(argv: Iterable[str]) -> int:
    command = next(iter(argv), "")
    if command not in {"check", "release"}:
        print("usage: python -m app.sentry check | release", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if command == "release":
        print(release_name(settings))
        return 0
    return check(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
