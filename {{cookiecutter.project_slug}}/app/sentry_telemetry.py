"""Custom spans and metrics, re-exported by app/sentry.py (the face): `sentry.span`,
`sentry.count`, `sentry.gauge`, `sentry.distribution`.

Both cost nothing while they would send nothing: a span is started only inside a sampled
request (or another sampled span), a metric only while Sentry and SENTRY_ENABLE_METRICS are on;
otherwise no SDK function is called at all. What they send passes through the same hooks as
everything else (app/sentry_integration.py): a 2.x span inside its transaction through
before_send_transaction, a 3.x span through before_send_span, a metric through
before_send_metric, each scrubbed by app/sentry_scrubbing.py's rules.
"""

import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from app.sentry_integration import state

try:
    import sentry_sdk
    import sentry_sdk.metrics
except ImportError:  # app/sentry.py says so at start-up, and everything here stays idle
    sentry_sdk = None  # type: ignore[assignment]

# What an attribute may hold on both generations; anything else is sent as its repr().
Attribute = str | int | float | bool

Function = TypeVar("Function", bound=Callable[..., Any])


class Span:
    """What `sentry.span(op, name, **data)` returns: a context manager, or a decorator of a
    function (sync or async) whose every call is then a span."""

    __slots__ = ("_data", "_name", "_op", "_recording")

    def __init__(self, op: str, name: str, data: dict[str, Attribute]) -> None:
        self._op = op
        self._name = name
        self._data = data
        self._recording: list[tuple[Any, Any]] = []  # (the bridge's context, the SDK's span)

    def __enter__(self) -> "Span":
        recorder = None
        if state.enabled and state.generation.is_sampled(sentry_sdk.get_current_span()):
            recorder = state.generation.span(self._op, self._name, self._data)
        self._recording.append((recorder, None if recorder is None else recorder.__enter__()))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        recorder, _ = self._recording.pop()
        # An exception ends the span as failed, and goes on.
        return None if recorder is None else recorder.__exit__(exc_type, exc, traceback)

    def set_data(self, **data: Attribute) -> None:
        """More data, known only once the work has run (a row count, a cache hit)."""
        if self._recording and (sdk_span := self._recording[-1][1]) is not None:
            state.generation.set_data(sdk_span, data)

    def __call__(self, function: Function) -> Function:
        op, name, data = self._op, self._name, self._data
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def traced_coroutine(*args: Any, **kwargs: Any) -> Any:
                with Span(op, name, data):
                    return await function(*args, **kwargs)

            return cast("Function", traced_coroutine)

        @functools.wraps(function)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with Span(op, name, data):
                return function(*args, **kwargs)

        return cast("Function", traced)


def span(op: str, name: str, /, **data: Attribute) -> Span:
    """A child span of the current one (the request's), with `op`, `name` and `data`:

        with sentry.span("db", "create item", rows=1):
            ...

        @sentry.span("task", "rebuild search index")
        async def rebuild() -> None: ...

    Nothing at all while Sentry is off or the request is not sampled. `op` and `name` are
    positional, so that the data may have keys of those names too."""
    return Span(op, name, data)


def count(name: str, value: float = 1, unit: str | None = None, **attributes: Attribute) -> None:
    """Add `value` to the counter `name`. In a request, the SDK adds the tenant (`tenant_id`)
    and user (`user.id`) from the scope; outside one, pass `tenant_id=` yourself."""
    if _metrics_on():
        sentry_sdk.metrics.count(name, value, unit=unit, attributes=attributes or None)


def gauge(name: str, value: float, unit: str | None = None, **attributes: Attribute) -> None:
    """The current value of `name` (a queue's length, a pool's size in use)."""
    if _metrics_on():
        sentry_sdk.metrics.gauge(name, value, unit=unit, attributes=attributes or None)


def distribution(name: str, value: float, unit: str | None = None, **attributes: Attribute) -> None:
    """One measurement of `name` (a duration, a size), aggregated into percentiles."""
    if _metrics_on():
        sentry_sdk.metrics.distribution(name, value, unit=unit, attributes=attributes or None)


def _metrics_on() -> bool:
    return state.enabled and state.metrics_enabled
