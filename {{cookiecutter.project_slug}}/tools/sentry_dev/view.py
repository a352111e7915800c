"""What `make sentry-dev` prints for each item the loopback receiver gets: an event as a short
block a developer can read at a glance (what failed, where, for whom, and which fields the
scrubbers masked), one line per request's trace and per Sentry log, and one line for
everything else (client reports, metrics, ...).

    describe("event", payload)        -> a block of lines
    describe("transaction", payload)  -> one line: a request's trace (sentry-sdk 2.x)
    describe("span", payload)         -> the same line per request (3.x streams its spans)
    describe("log", payload)          -> one line per Sentry log (SENTRY_ENABLE_LOGS)
"""

from datetime import datetime
from typing import Any

from sentry_sdk._types import AnnotatedValue

from app.sentry_scrubbing import FILTERED

Event = dict[str, Any]

# What a masked value is replaced with: the app's own pass (app/sentry.py) and the SDK's
# EventScrubber (it substitutes this AnnotatedValue). Both say "[Filtered]" today; kept as a
# set so the viewer stays right if either changes.
MASKS = frozenset(
    {FILTERED, str(AnnotatedValue.substituted_because_contains_sensitive_data().value)}
)

# Parts of an event that describe the SDK, not the request: never scanned for masks.
_NOT_SCANNED = frozenset({"_meta", "sdk", "modules", "debug_meta"})


def describe(kind: str, payload: Event) -> str:
    if kind == "event":
        return describe_event(payload)
    if kind == "transaction":
        return describe_transaction(payload)
    if kind == "span":
        return describe_spans(payload)
    if kind == "log":
        return describe_logs(payload)
    if kind == "trace_metric":
        return describe_metrics(payload)
    return describe_other(kind, payload)


def describe_event(event: Event) -> str:
    request = event.get("request") or {}
    user = event.get("user") or {}
    tags = event.get("tags") or {}
    if isinstance(tags, list):  # the SDK may send tags as [key, value] pairs
        tags = {str(pair[0]): pair[1] for pair in tags if len(pair) == 2}
    lines = [
        f"=== {str(event.get('level', 'error')).upper()}  event {event.get('event_id', '?')}",
        f"  {headline(event)}",
    ]
    if transaction := event.get("transaction"):
        lines.append(f"  route        {transaction}")
    if request:
        url = str(request.get("url", ""))
        if query := request.get("query_string"):
            url += f"?{query}"
        lines.append(f"  request      {request.get('method', '?')} {url}")
    if user:
        email = f"  email={user['email']}" if user.get("email") else ""
        lines.append(f"  user         id={user.get('id', '?')}{email}")
    if "tenant_id" in tags:
        lines.append(f"  tenant       {tags['tenant_id']}")
    if tags:
        lines.append("  tags         " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items())))
    lines.append(
        f"  release      {event.get('release', '-')}  environment={event.get('environment', '-')}"
    )
    masked = scrubbed_paths(event)
    lines.append("  scrubbed     " + (", ".join(masked) if masked else "nothing"))
    return "\n".join(lines)


def headline(event: Event) -> str:
    """The exception (type: message, newest last in Sentry's list) or the message."""
    values = (event.get("exception") or {}).get("values") or []
    if values:
        last = values[-1]
        text = f"{last.get('type', '?')}: {last.get('value', '')}"
        causes = [str(value.get("type", "?")) for value in values[:-1]]
        return text + (f"  (from {' <- '.join(reversed(causes))})" if causes else "")
    logentry = event.get("logentry") or {}
    message = event.get("message") or logentry.get("formatted") or logentry.get("message")
    origin = f"  (logger {event['logger']})" if event.get("logger") else ""
    return f"{message}{origin}"


def scrubbed_paths(event: Event) -> list[str]:
    """Dotted paths of the values a scrubber masked: `request.data.password` for a value that
    is the mask, `exception.values.0.value (part)` for a text with a masked piece inside."""
    found: list[str] = []

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not (path == "" and key in _NOT_SCANNED):
                    walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}.{index}")
        elif isinstance(value, str):
            if value in MASKS:
                found.append(path)
            elif any(mask in value for mask in MASKS):
                found.append(f"{path} (part)")

    walk(event, "")
    return found


def describe_transaction(transaction: Event) -> str:
    """sentry-sdk 2.x: a request's trace is one transaction, its spans inside."""
    trace = (transaction.get("contexts") or {}).get("trace") or {}
    return _trace_line(
        method=(transaction.get("request") or {}).get("method", ""),
        name=transaction.get("transaction", "?"),
        status=trace.get("status", "?"),
        http=(trace.get("data") or {}).get("http.response.status_code"),
        duration=_seconds_between(transaction.get("start_timestamp"), transaction.get("timestamp")),
        spans=len(transaction.get("spans") or []),
        trace_id=trace.get("trace_id", "?"),
    )


def describe_spans(payload: Event) -> str:
    """sentry-sdk 3.x streams a trace as spans, a batch per item: one line per request (its
    segment, the span with `is_segment`), the same line as a 2.x transaction's."""
    spans = [span for span in payload.get("items") or [] if isinstance(span, dict)]
    lines = []
    for segment in segments(payload):
        attributes = segment.get("attributes") or {}
        children = [
            span
            for span in spans
            if not span.get("is_segment")
            and _value(span.get("attributes"), "sentry.segment.id") == segment.get("span_id")
        ]
        lines.append(
            _trace_line(
                method=_value(attributes, "http.request.method") or "",
                name=segment.get("name", "?"),
                status=segment.get("status", "?"),
                http=_value(attributes, "http.response.status_code"),
                duration=_seconds_between(
                    segment.get("start_timestamp"), segment.get("end_timestamp")
                ),
                spans=len(children),
                trace_id=segment.get("trace_id", "?"),
            )
        )
    if not lines:  # children batched apart from their request's segment
        lines.append(f"--- span  {len(spans)} spans, their request's line in another batch")
    return "\n".join(lines)


def segments(payload: Event) -> list[Event]:
    """The request spans (segments) of a 3.x "span" item."""
    spans = payload.get("items") or []
    return [span for span in spans if isinstance(span, dict) and span.get("is_segment")]


def _trace_line(
    *,
    method: str,
    name: str,
    status: str,
    http: object,
    duration: float | None,
    spans: int,
    trace_id: str,
) -> str:
    took = f"{duration * 1000:.1f} ms" if duration is not None else "? ms"
    answered = f" {http}" if http is not None else ""
    return (
        f"--- transaction {method} {name}  status={status}{answered}  {took}  "
        f"{spans} spans  trace={trace_id}"
    )


def describe_logs(payload: Event) -> str:
    """One line per Sentry log: its level, body, logger, and whose request logged it."""
    lines = []
    for log in payload.get("items") or []:
        attributes = log.get("attributes") or {}
        level = log.get("level") or _value(attributes, "sentry.severity_text") or "?"
        logger = _value(attributes, "logger.name")
        origin = f"  (logger {logger})" if logger else ""
        lines.append(
            f"--- log {str(level).upper():<5} {log.get('body', '')}{origin}{_whose(attributes)}"
        )
    return "\n".join(lines) or "--- log  empty"


def describe_metrics(payload: Event) -> str:
    """One line per metric: its type, name, value and unit, and whose request sent it."""
    lines = []
    for metric in payload.get("items") or []:
        attributes = metric.get("attributes") or {}
        unit = f" {metric['unit']}" if metric.get("unit") else ""
        lines.append(
            f"--- metric {metric.get('type', '?')} {metric.get('name', '?')}"
            f" = {metric.get('value', '?')}{unit}{_whose(attributes)}"
        )
    return "\n".join(lines) or "--- metric  empty"


def _whose(attributes: object) -> str:
    return "".join(
        f"  {label}={found}"
        for label, name in (("tenant", "tenant_id"), ("user", "user.id"))
        if (found := _value(attributes, name)) is not None
    )


def _value(attributes: object, name: str) -> Any:
    """An attribute as sent ({"value": ..., "type": ...}), or None when absent."""
    if not isinstance(attributes, dict):
        return None
    attribute = attributes.get(name)
    return attribute.get("value") if isinstance(attribute, dict) else attribute


def describe_other(kind: str, payload: Event) -> str:
    if kind == "client_report":
        dropped = [
            f"{entry.get('category')} x{entry.get('quantity')} ({entry.get('reason')})"
            for entry in payload.get("discarded_events") or []
        ]
        return f"--- client_report  the SDK dropped: {', '.join(dropped) or 'nothing'}"
    return f"--- {kind}  {', '.join(sorted(payload)) or 'empty'}"


# By name: ruff formats `except (A, B):` without parentheses for a 3.14 floor (PEP 758).
_NOT_A_TIME = (TypeError, ValueError)


def _seconds_between(start: object, end: object) -> float | None:
    """Sentry timestamps are ISO 8601 strings or seconds since the epoch."""
    try:
        return _epoch(end) - _epoch(start)
    except _NOT_A_TIME:
        return None


def _epoch(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    raise TypeError(f"not a timestamp: {value!r}")
