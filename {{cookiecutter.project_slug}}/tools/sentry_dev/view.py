"""What `make sentry-dev` prints for each item the loopback receiver gets: an event as a short
block a developer can read at a glance (what failed, where, for whom, and which fields the
scrubbers masked), and one line for everything else (transactions, client reports, ...).

    describe("event", payload)        -> a block of lines
    describe("transaction", payload)  -> one line
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
    trace = (transaction.get("contexts") or {}).get("trace") or {}
    duration = _seconds_between(transaction.get("start_timestamp"), transaction.get("timestamp"))
    took = f"{duration * 1000:.1f} ms" if duration is not None else "? ms"
    method = (transaction.get("request") or {}).get("method", "")
    return (
        f"--- transaction {method} {transaction.get('transaction', '?')}  "
        f"status={trace.get('status', '?')}  {took}  "
        f"{len(transaction.get('spans') or [])} spans  trace={trace.get('trace_id', '?')}"
    )


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
