"""The SQL statements of one unsampled request, kept cheaply until an event needs them as
breadcrumbs. Standard library only; app/sentry_integration.py's QueryRecorder fills it."""

import contextlib
import time
from collections import deque
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from app.sentry_sampling import is_noise

# The most breadcrumbs an event carries (the SDK's default, set explicitly by app/sentry.py).
MAX_BREADCRUMBS = 100


class QueryLog:
    """The statements of one unsampled request, noted as they run (a timestamp and a string)
    and turned into the SDK's `query` breadcrumbs only if an event is sent: most requests
    send none, and a breadcrumb built through the SDK costs ten times as much."""

    __slots__ = ("statements",)

    def __init__(self) -> None:
        self.statements: deque[tuple[float, str, bool]] = deque(maxlen=MAX_BREADCRUMBS)

    def __len__(self) -> int:
        return len(self.statements)

    def note(self, statement: str, many: bool) -> None:
        self.statements.append((time.time(), statement, many))

    def add_to(self, event: dict[str, Any]) -> None:
        """Merged with the breadcrumbs the SDK applied, in time order, as many as it keeps."""
        trail = event.setdefault("breadcrumbs", {})
        if not isinstance(trail, dict):
            return
        crumbs = trail.setdefault("values", [])
        for at, statement, many in self.statements:
            # As sentry_sdk.add_breadcrumb(message=statement, category="query") records it:
            # the statement only, its parameters are never sent.
            crumb = {
                "message": statement,
                "category": "query",
                "data": {"db.executemany": True} if many else {},
                "timestamp": datetime.fromtimestamp(at, UTC),
                "type": "default",
            }
            if not is_noise(crumb):
                crumbs.append(crumb)
        with contextlib.suppress(TypeError, KeyError):  # as the SDK sorts: when it can
            crumbs.sort(key=lambda crumb: crumb["timestamp"])
        del crumbs[:-MAX_BREADCRUMBS]


# The query log of the unsampled request being served, if any (set by the request middleware).
request_queries: ContextVar[QueryLog | None] = ContextVar("request_queries", default=None)
