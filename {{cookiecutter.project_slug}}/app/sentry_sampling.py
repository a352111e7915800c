"""Which requests are traced, and which make no noise at all: one table, first match wins;
paths not in it get SENTRY_TRACES_SAMPLE_RATE, reads a fifth of it. Paths are raw request
paths (the decision is made before routing). Standard library only."""

import re
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Probes (the health checks): no transaction and no breadcrumb, whatever the sample rate.
QUIET_PATHS = frozenset({"/health", "/health/ready"})
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

# Reads that no rule names (GET, HEAD) are traced at this share of SENTRY_TRACES_SAMPLE_RATE:
# they are most of the traffic and the most alike, and a traced request costs about as much
# CPU again as the request itself (its spans, the SDK's serializer, the scrubbing pass), which
# at the full rate was the larger part of what Sentry cost a read. A rate of 1 still traces
# every request (development, tests).
READ_SHARE = 0.2
READ_METHODS = frozenset({"GET", "HEAD"})

# The ASGI scope of the probe being served, if any (set by the request middleware).
quiet_request: ContextVar[dict[str, Any] | None] = ContextVar("quiet_request", default=None)


def trace_rate(path: str, default_rate: float, method: str | None = None) -> float:
    for rule in TRACE_RULES:
        if rule.path.fullmatch(path):
            return rule.rate
    if method in READ_METHODS and default_rate < 1:
        return default_rate * READ_SHARE
    return default_rate


def sample_rate(
    path: str,
    default_rate: float,
    parent_sampled: Callable[[], bool | None],
    method: str | None = None,
) -> float:
    """The table's rate, except that between 0 and 1 the caller's decision wins, so that a
    distributed trace stays whole. `parent_sampled` is asked only then: reading it means
    scanning the request headers, which most requests (probes, rate 0 or 1) never need."""
    rate = trace_rate(path, default_rate, method)
    if 0 < rate < 1 and (parent := parent_sampled()) is not None:
        return 1.0 if parent else 0.0
    return rate


def caller_sampled(headers: Iterable[tuple[bytes, bytes]]) -> bool | None:
    """The caller's decision, from `sentry-trace: <trace>-<span>-<1|0>`, if it made one."""
    for name, value in headers:
        if name == b"sentry-trace":
            flag = value.rpartition(b"-")[2]
            return True if flag == b"1" else False if flag == b"0" else None
    return None


def is_noise(crumb: dict[str, Any]) -> bool:
    """A breadcrumb that says nothing an event needs: anything while a probe is served, an
    access-log line (it repeats the event's own request, raw: client address and undecoded
    query string included), a call to a probe, or a log line about one."""
    if quiet_request.get() is not None or crumb.get("category") == "uvicorn.access":
        return True
    url = (crumb.get("data") or {}).get("url")
    if isinstance(url, str) and _path_of(url) in QUIET_PATHS:
        return True
    return bool(_QUIET_PATH_IN_TEXT.search(str(crumb.get("message") or "")))


def _path_of(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:  # e.g. sentry-sdk 3 masks credentials as "[Filtered]:[Filtered]@"
        return ""
