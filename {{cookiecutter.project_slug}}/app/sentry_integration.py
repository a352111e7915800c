"""Our integration with the SDK, in place of its Starlette, FastAPI and SQLAlchemy ones, which
cost 40-60 % of a small route's throughput whether or not anything goes wrong: the request
middleware with its body tap and request processor, the SQL recorder, one capture point, and
the hooks through which every envelope item passes. app/sentry.py (the face) switches it on;
nothing here imports the face.
"""

import contextlib
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine import Engine

from app.sentry_queries import MAX_BREADCRUMBS as MAX_BREADCRUMBS
from app.sentry_queries import QueryLog, request_queries
from app.sentry_repeats import RepeatBudget, error_kind
from app.sentry_sampling import QUIET_PATHS, caller_sampled, is_noise, quiet_request, sample_rate
from app.sentry_scrubbing import FILTERED, Event, scrub_baggage, scrub_event
from app.sentry_sdk_bridge import Generation, RequestTrace

try:
    import sentry_sdk
except ImportError:  # app/sentry.py says so at start-up, and everything here stays idle
    sentry_sdk = None  # type: ignore[assignment]

logger = logging.getLogger("app.sentry")


@dataclass
class State:
    """What init_sentry decided; while `enabled` is False everything here passes through."""

    enabled: bool = False
    send_user_email: bool = False
    traces_sample_rate: float = 0.0
    shutdown_timeout: float = 2.0
    repeats: RepeatBudget = field(default_factory=RepeatBudget)
    # The installed SDK's generation (app/sentry_sdk_bridge.py): how a trace is started.
    generation: Generation = field(default_factory=Generation)
    logs_enabled: bool = False  # SENTRY_ENABLE_LOGS: otherwise no log item is ever sent
    metrics_enabled: bool = True  # SENTRY_ENABLE_METRICS


state = State()

# ---------------------------------------------------------------------------------------------
# Capture: one point per error, where the request, user and tenant are known.
# ---------------------------------------------------------------------------------------------

_EVENT_ID = "__sentry_event_id__"


def report(
    exc: BaseException, grouping: Sequence[str] | None = None, extra: dict[str, Any] | None = None
) -> str | None:
    """Send an exception once (within the repeat budget) and stamp its event id on it."""
    if not state.enabled:
        return None
    if (reported := event_id_of(exc)) is not None:
        return reported
    kind = error_kind(exc)
    event_id = state.repeats.last_event_if_over_budget(kind)
    if event_id is None:
        with sentry_sdk.new_scope() as scope:
            decorate(scope, grouping, extra or {})
            event_id = sentry_sdk.capture_exception(exc)
        state.repeats.sent(kind, event_id)
    with contextlib.suppress(AttributeError):  # a few builtin exceptions take no attributes
        setattr(exc, _EVENT_ID, event_id)
    return event_id


def event_id_of(exc: BaseException) -> str | None:
    """The id of the event an exception was reported as, if it was."""
    reported = getattr(exc, _EVENT_ID, None)
    return None if reported is None else str(reported)


def decorate(scope: Any, grouping: Sequence[str] | None, extra: dict[str, Any]) -> None:
    if grouping:
        scope.fingerprint = list(grouping)
    for key, value in extra.items():
        scope.set_extra(key, value)


# ---------------------------------------------------------------------------------------------
# The request middleware: one request's path through it, top to bottom.
# ---------------------------------------------------------------------------------------------


class SentryRequestContext:
    """A pure ASGI middleware. Per request it only forks the isolation scope (so user, tags
    and breadcrumbs belong to this request alone) and registers one event processor; the
    request's data and its SQL breadcrumbs are built only when an event is actually sent, and
    a transaction is started only for the sampled share of requests. Probes (QUIET_PATHS) get
    none of that: they are the most frequent requests and must cost nothing."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not state.enabled:
            await self.app(scope, receive, send)
            return
        if scope["path"] in QUIET_PATHS:
            await self._serve_quietly(scope, receive, send)
            return
        # One frame per request (no helper coroutine): every traceback logged passes here.
        body = BodyTap(receive) if scope["method"] in _METHODS_WITH_BODIES else None
        with sentry_sdk.isolation_scope() as isolation:
            isolation.clear_breadcrumbs()  # this request's own, not start-up's or others'
            trace_headers = _trace_headers(scope)
            state.generation.join_trace(trace_headers)
            sampled = _sampled(scope)
            # Unsampled, the request's statements are only noted; they become breadcrumbs if
            # an event is sent (a sampled request records spans, and breadcrumbs too).
            queries = None if sampled else QueryLog()
            isolation.add_event_processor(request_processor(scope, body, queries))
            noted = request_queries.set(queries)
            receive = body.receive if body else receive
            try:
                if not sampled:
                    await self.app(scope, receive, send)
                    return
                with state.generation.request_trace(
                    trace_headers, scope["path"], scope["method"]
                ) as trace:
                    try:
                        await self.app(scope, receive, _recording(send, trace))
                    except Exception:
                        trace.set_http_status(500)  # what the error handler outside answers
                        raise
                    finally:  # a route that raised is named by its endpoint too
                        if name := _endpoint_name(scope):
                            trace.rename(name)
            except Exception as exc:
                # The one capture point of an unhandled error; the 500 handler (outside this
                # middleware) answers with its event id.
                report(exc)
                raise
            finally:
                request_queries.reset(noted)

    async def _serve_quietly(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """No scope of its own, no breadcrumbs, no transaction: an event from a probe (its
        failure, an ERROR log) gets the request and an empty trail in before_send."""
        quiet = quiet_request.set(scope)
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            report(exc)
            raise
        finally:
            quiet_request.reset(quiet)


_METHODS_WITH_BODIES = frozenset({"POST", "PUT", "PATCH"})
MAX_BODY_BYTES = 10_000  # the SDK's "medium": larger bodies are left out of events


class BodyTap:
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


# Its own generator: sampling neither reads nor moves the process's global random state.
_sampling = random.Random()  # noqa: S311 - sampling, not cryptography


def _sampled(scope: dict[str, Any]) -> bool:
    """Whether the request is in the share the sampling table traces: deciding first spares
    unsampled requests the cost of an unsampled transaction or span."""
    parent = lambda: caller_sampled(scope["headers"])  # noqa: E731 - read only if needed
    rate = sample_rate(scope["path"], state.traces_sample_rate, parent, scope["method"])
    return rate > 0 and _sampling.random() < rate


def _trace_headers(scope: dict[str, Any]) -> dict[str, str]:
    """What continue_trace may read: `sentry-trace`, and the caller's baggage trimmed to the
    sampling-context fields (it becomes the `trace` header of every envelope of the trace,
    which no before_send hook sees)."""
    headers = {}
    for name, value in scope["headers"]:  # every request: read the two, decode nothing else
        if name == b"sentry-trace":
            headers["sentry-trace"] = value.decode("latin-1")
        elif name == b"baggage":
            headers["baggage"] = scrub_baggage(value.decode("latin-1"))
    return headers


def _recording(
    send: Callable[[dict[str, Any]], Any], trace: RequestTrace
) -> Callable[[dict[str, Any]], Any]:
    async def recording_send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            trace.set_http_status(message["status"])
        await send(message)

    return recording_send


def _header_dict(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


def _endpoint_name(scope: dict[str, Any]) -> str | None:
    endpoint = scope.get("endpoint")  # set by Starlette's router on the shared scope
    if endpoint is None:
        return None
    return f"{endpoint.__module__}.{endpoint.__qualname__}"


def request_processor(
    scope: dict[str, Any], body: BodyTap | None, queries: "QueryLog | None" = None
) -> Callable[[Any, dict[str, Any]], Any]:
    """Adds the request, and the SQL breadcrumbs noted so far, to an event: built only when
    an event is sent."""

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
        if event.get("type") != "transaction":
            if name := _endpoint_name(scope):
                event["transaction"] = name
                event["transaction_info"] = {"source": "component"}
            if queries:
                queries.add_to(event)
        return event

    return processor


# ---------------------------------------------------------------------------------------------
# The SQL recorder (app/sentry_queries.py keeps an unsampled request's statements).
# ---------------------------------------------------------------------------------------------


class QueryRecorder:
    """SQL breadcrumbs and spans, in place of the SDK's SQLAlchemy integration, which opens a
    span (ids, timestamps, connection data) for every query even when no transaction is
    sampled, only to throw it away. Here an unsampled request notes its statements in its
    QueryLog, a sampled one a span and a breadcrumb, and a probe nothing."""

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
        if (queries := request_queries.get()) is not None:
            queries.note(statement, many)
            return
        if not state.enabled or quiet_request.get() is not None:
            return
        # The statement only, as the SDK records it: its parameters are never sent.
        data: dict[str, Any] = {"db.executemany": True} if many else {}
        sentry_sdk.add_breadcrumb(message=statement, category="query", data=data)
        if not state.generation.is_sampled(sentry_sdk.get_current_span()):
            return  # outside any sampled request (start-up, a background task)
        data["db.system"] = conn.dialect.name
        if database := conn.engine.url.database:
            data["db.name"] = database
        recorder = state.generation.span("db", statement, data, origin="auto.db.sqlalchemy")
        setattr(context, cls._CONTEXT_KEY, (recorder, recorder.__enter__()))

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
            state.generation.set_failed(span)
        recorder.__exit__(None, None, None)


# ---------------------------------------------------------------------------------------------
# The SDK's hooks: every item of every envelope passes through one of them.
# ---------------------------------------------------------------------------------------------


def before_send(event: Event, hint: dict[str, Any]) -> Event | None:
    if (probe := quiet_request.get()) is not None:
        # Runs in the probe's own context: its request, and none of the process's trail.
        event["breadcrumbs"] = {"values": []}
        event = request_processor(probe, None)(event, hint)
    exc_info = hint.get("exc_info")
    grouping = getattr(exc_info[1], "sentry_fingerprint", None) if exc_info else None
    if grouping and "fingerprint" not in event:
        event["fingerprint"] = [str(part) for part in grouping]
    return _scrubbed_or_dropped(event)


def before_send_transaction(event: Event, hint: dict[str, Any]) -> Event | None:
    if urlsplit(str((event.get("request") or {}).get("url") or "")).path in QUIET_PATHS:
        return None
    return _scrubbed_or_dropped(event)


def before_send_span(span: Any, hint: dict[str, Any]) -> Any:
    """sentry-sdk 3's streamed spans: their name and attributes, by the same rules. A span
    cannot be dropped here (the SDK then sends it as it was), so one that could not be
    scrubbed leaves with neither."""
    return _scrubbed_or_dropped(span) or {**span, "name": FILTERED, "attributes": {}}


def before_send_telemetry(item: Any, hint: dict[str, Any]) -> Any:
    """A metric or a Sentry log: attributes and text, scrubbed by the same rules."""
    return _scrubbed_or_dropped(item)


def before_send_log(log: Any, hint: dict[str, Any]) -> Any:
    """Sentry logs (the logging integration, sentry_sdk.logger), only when SENTRY_ENABLE_LOGS
    is on: 3.x has no switch of its own, and 2.x's covers the logging integration alone."""
    return before_send_telemetry(log, hint) if state.logs_enabled else None


def before_send_metric(metric: Any, hint: dict[str, Any]) -> Any:
    """sentry_sdk.metrics, ours (app/sentry.py) and any other caller's: off with
    SENTRY_ENABLE_METRICS=false (2.x's enable_metrics no longer does anything)."""
    return before_send_telemetry(metric, hint) if state.metrics_enabled else None


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    return None if is_noise(crumb) else crumb


def traces_sampler(default_rate: float) -> Callable[[dict[str, Any]], float]:
    """For transactions started outside SentryRequestContext."""

    def sampler(context: dict[str, Any]) -> float:
        asgi_scope = context.get("asgi_scope") or {}
        path, method = str(asgi_scope.get("path", "")), asgi_scope.get("method")
        return sample_rate(path, default_rate, lambda: context.get("parent_sampled"), method)

    return sampler


def _scrubbed_or_dropped(event: Event) -> Event | None:
    try:
        return scrub_event(event, keep_user_email=state.send_user_email)
    except Exception:  # never send what could not be scrubbed
        logger.warning("Sentry event dropped: scrubbing failed", exc_info=True)
        return None
