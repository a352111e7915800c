"""The one place that knows which sentry-sdk generation is installed, and branches on it once.

sentry-sdk 2.x sends a request's trace as one transaction; 3.x streams it as spans, and drops
`start_transaction`, `before_send_transaction` and the `enable_logs` switch. What both share
(scopes, capture, breadcrumbs, `sentry_sdk.metrics`, `data_collection`, scope attributes) is
used directly by app/sentry.py and app/sentry_integration.py; what differs is here, behind
`Generation`, and only public APIs are used. Nothing imports a module 3.x removed
(`sentry_sdk.scrubber`, `sentry_sdk.tracing`).
"""

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

try:
    import sentry_sdk
    import sentry_sdk.integrations.logging
except ImportError:  # app/sentry.py says so at start-up
    sentry_sdk = None  # type: ignore[assignment]

# What differs between the generations is called through this name, typed Any: each call is
# right for one generation only, and the type checker sees the installed one.
_sdk: Any = sentry_sdk

# 2.75, the oldest 2.x the suite is proven on (the lock): it has `data_collection` (what the
# SDK may collect, named per category, as in 3.x) and attributes on scopes (the tenant on
# every log, metric and span).
OLDEST = (2, 75)
SUPPORTED = "2.75 or later, or 3.x"

Hook = Callable[[Any, dict[str, Any]], Any]


def installed_version() -> str | None:
    return None if sentry_sdk is None else str(sentry_sdk.VERSION)


def unsupported_reason() -> str | None:
    """Why the installed SDK cannot be used (naming it), or None when it can."""
    return problem_with(installed_version())


def problem_with(version: str | None) -> str | None:
    """Why this SDK version (None: not installed) cannot be used, or None when it can."""
    if version is None:
        return "sentry-sdk is not installed (uv add 'sentry-sdk[fastapi]')"
    major_minor = _major_minor(version)
    if major_minor is None or not (OLDEST <= major_minor < (4, 0)):
        return f"sentry-sdk {version} is not supported (this app supports {SUPPORTED})"
    return None


def _major_minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


# What the SDK may collect on its own, the same on both generations: nothing about the user
# but what app/sentry.py sets (the id), no cookies, bodies, frame locals, query parameters or
# AI and GraphQL payloads. Headers and query strings keep the SDK's denylist; our own pass
# (app/sentry_scrubbing.py) runs after it on everything that is sent.
DATA_COLLECTION: dict[str, Any] = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {"request": {"mode": "denylist"}},
    "http_bodies": [],
    "url_query_params": {"mode": "denylist"},
    "graphql": {"document": True, "variables": False},
    "gen_ai": {"inputs": False, "outputs": False},
    "mcp": {"inputs": False, "outputs": False},
    "database_query_data": False,
    "stack_frame_variables": False,
}

# Set while the request middleware starts a trace it has already decided to sample: 3.x asks
# traces_sampler about every new segment, and this answers "yes" for those.
_decided: ContextVar[bool] = ContextVar("sentry_trace_decided", default=False)


class Generation:
    """What differs between the SDK's major versions. `current()` picks the installed one."""

    major = 2

    def options(
        self, *, logs_level: int | None, before_send_transaction: Hook, before_send_span: Hook
    ) -> dict[str, Any]:
        """The init options that depend on the generation: the logging integration (ERROR
        records as events, INFO as breadcrumbs, and Sentry logs only at `logs_level`), and the
        hook every trace passes through (a 2.x transaction, each 3.x span)."""
        return {
            "integrations": [
                _sdk.integrations.logging.LoggingIntegration(
                    level=logging.INFO, event_level=logging.ERROR, sentry_logs_level=logs_level
                )
            ],
            "enable_logs": logs_level is not None,
            "before_send_transaction": before_send_transaction,
        }

    def join_trace(self, headers: dict[str, str]) -> None:
        """Every request's own trace id, or its caller's: what its events are linked by, traced
        or not (without this, every untraced request shared the process's)."""
        sentry_sdk.get_isolation_scope().generate_propagation_context(headers)

    @contextmanager
    def request_trace(
        self, headers: dict[str, str], path: str, method: str
    ) -> Iterator["RequestTrace"]:
        """A sampled server trace around one request, continuing the caller's."""
        transaction = _sdk.continue_trace(
            headers, op="http.server", name=path, source="url", origin="auto.http.asgi"
        )
        transaction.sampled = True  # decided already: the SDK's sampler is not asked again
        with _sdk.start_transaction(transaction):
            yield RequestTrace(transaction, self)

    @contextmanager
    def span(
        self, op: str, name: str, data: dict[str, Any], origin: str = "manual"
    ) -> Iterator[Any]:
        """A child of the current span; the caller checks that one is being sampled."""
        with _sdk.start_span(op=op, name=name, origin=origin) as span:
            self.set_data(span, data)
            yield span

    def set_data(self, span: Any, data: dict[str, Any]) -> None:
        for key, value in data.items():
            span.set_data(key, value)

    def rename(self, span: Any, name: str) -> None:
        span.name = name
        span.source = "component"

    def set_http_status(self, span: Any, status: int) -> None:
        span.set_http_status(status)

    def set_failed(self, span: Any) -> None:
        span.set_status("internal_error")

    def is_sampled(self, span: Any) -> bool:
        return bool(span is not None and span.sampled)

    def ignore_logger(self, name: str) -> None:
        """Records of this logger become neither events, breadcrumbs nor Sentry logs. 2.x's
        `ignore_logger` covers events and breadcrumbs only; Sentry logs have their own list."""
        _sdk.integrations.logging.ignore_logger(name)
        _sdk.integrations.logging.ignore_logger_for_sentry_logs(name)


_ENVELOPE_POST = re.compile(r"POST \S+/api/\d+/envelope/?")


class StreamingGeneration(Generation):
    """sentry-sdk 3: spans are streamed as they end; their data are attributes."""

    major = 3

    def options(
        self, *, logs_level: int | None, before_send_transaction: Hook, before_send_span: Hook
    ) -> dict[str, Any]:
        return {
            # `level` is the Sentry-logs level here (None: none), `breadcrumb_level` what 2.x
            # called `level`.
            "integrations": [
                _sdk.integrations.logging.LoggingIntegration(
                    level=logs_level, event_level=logging.ERROR, breadcrumb_level=logging.INFO
                )
            ],
            "before_send_span": before_send_span,
            # The SDK's own deliveries: 3.0.0b2 traces them (its stdlib integration) as
            # children of the request whose scope its sending thread was started in.
            "ignore_spans": [_ENVELOPE_POST],
        }

    def join_trace(self, headers: dict[str, str]) -> None:
        _sdk.continue_trace(headers)  # 3.x: on the isolation and the (forked) current scope

    @contextmanager
    def request_trace(
        self, headers: dict[str, str], path: str, method: str
    ) -> Iterator["RequestTrace"]:
        # The trace was joined by join_trace, at the start of the request.
        decided = _decided.set(True)
        try:
            segment = _sdk.start_span(
                name=path,
                attributes={
                    "sentry.op": "http.server",
                    "sentry.origin": "auto.http.asgi",
                    "sentry.segment.name.source": "url",
                    "http.request.method": method,
                },
            )
        finally:
            _decided.reset(decided)
        with segment:
            yield RequestTrace(segment, self)

    @contextmanager
    def span(
        self, op: str, name: str, data: dict[str, Any], origin: str = "manual"
    ) -> Iterator[Any]:
        attributes = {**data, "sentry.op": op, "sentry.origin": origin}
        with _sdk.start_span(name=name, attributes=attributes) as span:
            yield span

    def set_data(self, span: Any, data: dict[str, Any]) -> None:
        span.set_attributes(data)

    def rename(self, span: Any, name: str) -> None:
        span.name = name
        span.set_attribute("sentry.segment.name.source", "component")

    def set_http_status(self, span: Any, status: int) -> None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.status = "error"

    def set_failed(self, span: Any) -> None:
        span.status = "error"

    def ignore_logger(self, name: str) -> None:
        # The names turned round: 3.x's `ignore_logger` covers Sentry logs only, and
        # `ignore_logger_for_events` events and breadcrumbs.
        _sdk.integrations.logging.ignore_logger_for_events(name)
        _sdk.integrations.logging.ignore_logger(name)


class RequestTrace:
    """The server span of one sampled request."""

    __slots__ = ("_generation", "span")

    def __init__(self, span: Any, generation: Generation) -> None:
        self.span = span
        self._generation = generation

    def rename(self, name: str) -> None:
        """Named by its endpoint (a component), no longer by its raw path."""
        self._generation.rename(self.span, name)

    def set_http_status(self, status: int) -> None:
        self._generation.set_http_status(self.span, status)


def traces_sampler(decide: Callable[[dict[str, Any]], float]) -> Callable[[dict[str, Any]], float]:
    """The SDK's traces_sampler: 1 for a trace the middleware already decided to sample."""

    def sampler(context: dict[str, Any]) -> float:
        return 1.0 if _decided.get() else decide(context)

    return sampler


def current() -> Generation:
    """The installed generation (call only once unsupported_reason() is None)."""
    major_minor = _major_minor(installed_version() or "")
    return StreamingGeneration() if major_minor and major_minor[0] >= 3 else Generation()
