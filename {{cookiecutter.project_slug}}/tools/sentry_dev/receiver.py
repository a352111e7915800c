"""A loopback stand-in for Sentry's ingest endpoint, so tests assert on what really left the
process: `POST /api/<project>/envelope/`, gzip-compressed or plain, as the real SDK sends it.

    with EnvelopeReceiver() as receiver:
        settings = load_settings(sentry_dsn=receiver.dsn, ...)
        ...
        event = receiver.wait_for_event(lambda e: e["level"] == "error")

It can also misbehave like a Sentry in trouble, and be switched back while the app runs:

        receiver.fault = rate_limited(retry_after=1)   # or failing(503), slow(0.5), BLACK_HOLE
        ...
        receiver.fault = HEALTHY                       # hung requests are answered now

`deliveries` holds what was accepted (answered 2xx); `refused` what arrived but was answered
with an error status, so a test can tell "refused" from "never sent".

`python -m tools.sentry_dev [PORT] [--json] [--fault NAME]` runs one in the foreground and
prints what arrives (readably, see tools/sentry_dev/view.py, or the whole JSON); NAME is one
of FAULTS, to watch how an app behaves against a Sentry in trouble. `make sentry-dev` runs it.
"""

import argparse
import gzip
import json
import re
import signal
import sys
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from sentry_sdk.envelope import Envelope

from tools.sentry_dev.view import describe

ENVELOPE_PATH = re.compile(r"/api/(?P<project>\d+)/envelope/?")
PUBLIC_KEY = "testkey"
PROJECT_ID = "1"

Event = dict[str, Any]


@dataclass(frozen=True)
class Fault:
    """How the receiver answers an envelope. The default is a healthy Sentry: 200 at once."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # seconds between reading the envelope and answering
    hang: bool = False  # take the request, answer nothing until the fault is changed

    @property
    def retry_after(self) -> float:
        """The back-off this answer asks for (Retry-After seconds), 0 when none."""
        for name, value in self.headers:
            if name.lower() == "retry-after":
                return float(value)
        return 0.0


HEALTHY = Fault()
BLACK_HOLE = Fault(hang=True)


def rate_limited(retry_after: int) -> Fault:
    """Sentry's answer when a project is over quota: 429 with the seconds to wait."""
    return Fault(429, headers=(("Retry-After", str(retry_after)),))


def failing(status: int) -> Fault:
    return Fault(status)


def slow(delay: float) -> Fault:
    return Fault(delay=delay)


FAULTS = {
    "hang": BLACK_HOLE,
    "slow": slow(5.0),
    "429": rate_limited(60),
    "500": failing(500),
    "503": failing(503),
}


@dataclass
class Delivery:
    """One POST as it arrived: the decompressed body and what it held."""

    project: str
    headers: dict[str, str]
    body: bytes
    envelope: Envelope
    items: list[tuple[str, Event]] = field(default_factory=list)
    answer: Fault = HEALTHY  # how the receiver answered it
    answered_at: float = 0.0  # time.monotonic() of the answer

    @property
    def event_ids(self) -> list[str]:
        return [str(payload.get("event_id")) for kind, payload in self.items if kind == "event"]


class EnvelopeReceiver:
    def __init__(
        self,
        port: int = 0,
        on_delivery: Callable[[Delivery], None] | None = None,
        fault: Fault = HEALTHY,
    ):
        self.deliveries: list[Delivery] = []
        self.refused: list[Delivery] = []
        self.rejected: list[str] = []
        self._arrived = threading.Condition()
        self._on_delivery = on_delivery
        self._fault = fault
        self._fault_changed = threading.Condition()
        self._closing = False
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        # A short poll: close() waits for the serving loop to notice, 0.5 s by default.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "EnvelopeReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._fault_changed:  # hung requests end unanswered, as when a host goes away
            self._closing = True
            self._fault_changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    # -- how it answers --------------------------------------------------------------------

    @property
    def fault(self) -> Fault:
        with self._fault_changed:
            return self._fault

    @fault.setter
    def fault(self, fault: Fault) -> None:
        with self._fault_changed:
            self._fault = fault
            self._fault_changed.notify_all()  # hung requests get the new answer

    @property
    def backoff_until(self) -> float:
        """When (time.monotonic()) the last back-off this receiver asked for ends; 0 if none."""
        with self._arrived:
            return max(
                (delivery.answered_at + delivery.answer.retry_after for delivery in self.refused),
                default=0.0,
            )

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
                        f"{self.rejected}; refused: {len(self.refused)}; "
                        f"the SDK's reports of what it dropped: "
                        f"{self.items('client_report')}"
                    )
                self._arrived.wait(remaining)

    def wait_for_event(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        return self.wait_for("event", predicate, timeout)

    # -- the HTTP side ---------------------------------------------------------------------

    def _record(self, delivery: Delivery) -> None:
        with self._arrived:
            accepted = delivery.answer.status < 300
            (self.deliveries if accepted else self.refused).append(delivery)
            self._arrived.notify_all()
        if self._on_delivery is not None:
            self._on_delivery(delivery)

    def _fault_once_unhung(self) -> Fault | None:
        """The fault to answer with, after waiting out a hang; None when closing."""
        with self._fault_changed:
            while self._fault.hang and not self._closing:
                self._fault_changed.wait()
            return None if self._closing else self._fault

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
                fault = receiver._fault_once_unhung()
                if fault is None:
                    self.close_connection = True
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
                time.sleep(fault.delay)
                receiver._record(
                    Delivery(
                        match["project"],
                        dict(self.headers),
                        body,
                        envelope,
                        items,
                        answer=fault,
                        answered_at=time.monotonic(),
                    )
                )
                answer = {"id": envelope.headers.get("event_id")} if fault.status < 300 else {}
                self._answer(fault.status, answer, fault.headers)

            def _answer(
                self,
                status: int,
                content: dict[str, Any],
                headers: tuple[tuple[str, str], ...] = (),
            ) -> None:
                data = json.dumps(content).encode()
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
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


# By name: ruff formats `except (A, B):` without parentheses for a 3.14 floor (PEP 758).
_NOT_JSON = (ValueError, TypeError)


def _payload(item: Any) -> object:
    """The item's JSON. The SDK parses only items typed application/json; containers of logs,
    metrics and (3.x) spans are typed application/vnd.sentry.items.*+json, JSON too."""
    try:
        parsed = item.payload.json
        return parsed if parsed is not None else json.loads(item.payload.get_bytes())
    except _NOT_JSON:
        return None


def _stop_on_sigint_and_sigterm() -> None:
    """Ctrl-C and SIGTERM (what `kill`, test runners and process managers send) both stop the
    receiver cleanly. SIGINT's handler is set here, not left to Python: a process started in
    the background by a shell without job control (`make sentry-dev &`, `nohup make test &` in
    a script) inherits SIGINT as ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    """python -m tools.sentry_dev [PORT] [--json] [--fault NAME] [--quiet]: print each
    item as it arrives."""
    parser = argparse.ArgumentParser(prog="python -m tools.sentry_dev")
    parser.add_argument("port", nargs="?", type=int, default=9000)
    parser.add_argument("--json", action="store_true", help="print whole items, not summaries")
    parser.add_argument("--fault", choices=sorted(FAULTS), help="answer like a Sentry in trouble")
    parser.add_argument(
        "--quiet", action="store_true", help="print only the counts, when stopped (for benchmarks)"
    )
    args = parser.parse_args(argv)

    def show(delivery: Delivery) -> None:
        if args.quiet:
            return
        if delivery.answer != HEALTHY:
            answer = delivery.answer
            wait = f", Retry-After {answer.retry_after:g} s" if answer.retry_after else ""
            slow = f", after {answer.delay:g} s" if answer.delay else ""
            print(f"!!! answered HTTP {answer.status}{wait}{slow} (--fault)", flush=True)
        for kind, payload in delivery.items:
            print(
                json.dumps(payload, indent=2) if args.json else describe(kind, payload),
                flush=True,
            )

    fault = FAULTS[args.fault] if args.fault else HEALTHY
    try:
        receiver = EnvelopeReceiver(args.port, on_delivery=show, fault=fault)
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    with receiver:
        try:
            _stop_on_sigint_and_sigterm()
            # The first line is read by scripts (the template's tests, its benchmark): keep it.
            print(f"listening; set SENTRY_DSN={receiver.dsn}", flush=True)
            if not (args.json or args.quiet):
                print(
                    f"in another terminal: SENTRY_DSN={receiver.dsn} make run\n"
                    "or send a test event: "
                    f"SENTRY_DSN={receiver.dsn} .venv/bin/python -m app.sentry check\n"
                    "Ctrl-C stops",
                    flush=True,
                )
            threading.Event().wait()
        except KeyboardInterrupt:
            # A second signal while the receiver closes ends the process at once.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            print(
                f"received {len(receiver.events)} events, "
                f"{len(receiver.transactions)} transactions",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
