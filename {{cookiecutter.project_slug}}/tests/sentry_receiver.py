"""A loopback stand-in for Sentry's ingest endpoint, so tests assert on what really left the
process: `POST /api/<project>/envelope/`, gzip-compressed or plain, as the real SDK sends it.

    with EnvelopeReceiver() as receiver:
        settings = load_settings(sentry_dsn=receiver.dsn, ...)
        ...
        event = receiver.wait_for_event(lambda e: e["level"] == "error")

`python -m tests.sentry_receiver [PORT] [--json]` runs one in the foreground and prints what
arrives (a summary line per item, or the whole JSON).
"""

import gzip
import json
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sentry_sdk.envelope import Envelope

ENVELOPE_PATH = re.compile(r"/api/(?P<project>\d+)/envelope/?")
PUBLIC_KEY = "testkey"
PROJECT_ID = "1"

Event = dict[str, Any]


@dataclass
class Delivery:
    """One POST as it arrived: the decompressed body and what it held."""

    project: str
    headers: dict[str, str]
    body: bytes
    envelope: Envelope
    items: list[tuple[str, Event]] = field(default_factory=list)


class EnvelopeReceiver:
    def __init__(self, port: int = 0, on_delivery: Callable[[Delivery], None] | None = None):
        self.deliveries: list[Delivery] = []
        self.rejected: list[str] = []
        self._arrived = threading.Condition()
        self._on_delivery = on_delivery
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "EnvelopeReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.port}/{PROJECT_ID}"

    # -- what arrived ----------------------------------------------------------------------

    def items(self, item_type: str) -> list[Event]:
        with self._arrived:
            return [
                payload
                for delivery in self.deliveries
                for kind, payload in delivery.items
                if kind == item_type
            ]

    @property
    def events(self) -> list[Event]:
        return self.items("event")

    @property
    def transactions(self) -> list[Event]:
        return self.items("transaction")

    @property
    def raw(self) -> bytes:
        """Every byte received (decompressed), to search for values that must not be there."""
        with self._arrived:
            return b"\n".join(d.body for d in self.deliveries)

    def wait_for(
        self, item_type: str, predicate: Callable[[Event], bool], timeout: float = 10.0
    ) -> Event:
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for payload in self.items(item_type):
                    if predicate(payload):
                        return payload
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no matching {item_type} arrived within {timeout}s; "
                        f"got {len(self.items(item_type))} {item_type}(s); rejected: "
                        f"{self.rejected}; the SDK's own reports of what it dropped: "
                        f"{self.items('client_report')}"
                    )
                self._arrived.wait(remaining)

    def wait_for_event(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        return self.wait_for("event", predicate, timeout)

    # -- the HTTP side ---------------------------------------------------------------------

    def _record(self, delivery: Delivery) -> None:
        with self._arrived:
            self.deliveries.append(delivery)
            self._arrived.notify_all()
        if self._on_delivery is not None:
            self._on_delivery(delivery)

    def _reject(self, reason: str) -> None:
        with self._arrived:
            self.rejected.append(reason)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                match = ENVELOPE_PATH.fullmatch(self.path.split("?", 1)[0])
                if match is None:
                    receiver._reject(f"unexpected path {self.path}")
                    self._answer(404, {"detail": "not an envelope endpoint"})
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = _decompress(body, self.headers.get("Content-Encoding", ""))
                    envelope = Envelope.deserialize(body)
                except (OSError, ValueError, zlib.error) as exc:
                    receiver._reject(f"unreadable envelope: {exc}")
                    self._answer(400, {"detail": "unreadable envelope"})
                    return
                items = [
                    (item.type or "", payload)
                    for item in envelope.items
                    if isinstance(payload := _payload(item), dict)
                ]
                receiver._record(
                    Delivery(match["project"], dict(self.headers), body, envelope, items)
                )
                self._answer(200, {"id": envelope.headers.get("event_id")})

            def _answer(self, status: int, content: dict[str, Any]) -> None:
                data = json.dumps(content).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: tests read what arrived, not an access log

        return Handler


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding in {"", "identity"}:
        return body
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _payload(item: Any) -> object:
    try:
        return item.payload.json
    except (ValueError, TypeError):
        return None


def _describe(kind: str, payload: Event) -> str:
    exception = (payload.get("exception") or {}).get("values") or [{}]
    last = exception[-1]
    summary = f"{last.get('type')}: {last.get('value')}" if last else payload.get("message")
    return (
        f"{kind} {payload.get('event_id')} level={payload.get('level')} "
        f"transaction={payload.get('transaction')!r} user={payload.get('user')} "
        f"tags={payload.get('tags')}\n  {summary}"
    )


def main(argv: list[str]) -> int:
    """python -m tests.sentry_receiver [PORT] [--json]: print each item as it arrives."""
    as_json = "--json" in argv
    ports = [arg for arg in argv if arg != "--json"]
    port = int(ports[0]) if ports else 9000

    def show(delivery: Delivery) -> None:
        for kind, payload in delivery.items:
            print(
                json.dumps(payload, indent=2) if as_json else _describe(kind, payload), flush=True
            )

    with EnvelopeReceiver(port, on_delivery=show) as receiver:
        print(f"listening; set SENTRY_DSN={receiver.dsn}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
