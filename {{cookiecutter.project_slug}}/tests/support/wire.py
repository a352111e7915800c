"""Round trips to PostgreSQL, counted on the wire: a loopback proxy in front of the server that
reads the protocol messages its clients send.

A client waits for the server once per Query message (the simple protocol: asyncpg's `BEGIN`,
`COMMIT`, `ROLLBACK` and statements without parameters) and once per Sync message (the
extended protocol: a prepared statement's Bind and Execute end with one). Counting those
counts the exchanges, whatever the driver and SQLAlchemy do in between.
https://www.postgresql.org/docs/current/protocol-flow.html
"""

import socket
import struct
import threading

from tests.support.outage import TcpProxy, pump

# Messages before the startup message (SSLRequest, GSSENCRequest) carry these codes in place
# of a protocol version; none of them, nor the startup message itself, has a type byte.
_NEGOTIATION_CODES = {80877103, 80877104}
_EXCHANGES = {ord("Q"), ord("S")}  # Query, Sync


class _ClientStream:
    """Splits one client's byte stream into messages, across recv() boundaries."""

    def __init__(self, counter: "RoundTripCounter") -> None:
        self.counter = counter
        self.buffer = b""
        self.started = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            header = 4 if not self.started else 5
            if len(self.buffer) < header:
                return
            if not self.started:
                (length,) = struct.unpack("!i", self.buffer[:4])
                if len(self.buffer) < length:
                    return
                (code,) = struct.unpack("!i", self.buffer[4:8])
                self.started = code not in _NEGOTIATION_CODES
                self.buffer = self.buffer[length:]
                continue
            kind = self.buffer[0]
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            if kind in _EXCHANGES:
                self.counter.add()
            self.buffer = self.buffer[1 + length :]


class RoundTripCounter(TcpProxy):
    """`counter.round_trips` so far, over every connection through the proxy. Clients must not
    negotiate TLS (`?ssl=disable`): the proxy reads the plain protocol."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._count_lock = threading.Lock()
        self.round_trips = 0
        super().__init__(target)

    def add(self) -> None:
        with self._count_lock:
            self.round_trips += 1

    def _forward(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        pump(source, sink, _ClientStream(self).feed if upstream else None)
