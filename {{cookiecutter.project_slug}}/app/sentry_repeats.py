"""The repeat budget: a storm of one identical error must not send thousands of identical
events, nor spend ~10 ms of CPU building each. Standard library only."""

import threading
import time
from collections.abc import Hashable

ErrorKind = tuple[str, str, str, int]


def error_kind(exc: BaseException) -> ErrorKind:
    """What makes two errors the same: type, message and the line that raised."""
    traceback = exc.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code.co_filename if traceback else ""
    line = traceback.tb_lineno if traceback else 0
    return type(exc).__qualname__, str(exc)[:200], code, line


class RepeatBudget:
    """Every kind of error gets `burst` events at once, refilled at `per_minute`. Past that, a
    repeat is neither built nor sent, and the 500 it causes answers with the id of the last
    event sent for that kind, which is the same issue in Sentry."""

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
