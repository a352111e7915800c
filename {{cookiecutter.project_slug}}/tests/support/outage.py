"""The database going away while the app runs, for real, on either backend.

    async with interruptible_database(tmp_path) as (database_url, outage):
        app = create_app(settings.model_copy(update={"database_url": database_url}))
        ...
        with outage:   # the database is unreachable inside the block, and back after it
            ...

PostgreSQL: the app connects through a loopback TCP proxy to the real server. Cutting it
closes every open connection (as a crashed or restarted server does) and closes the listening
socket, so new connections are refused; restoring listens on the same port again.

SQLite has no server to lose, and what happens to the file does not reach connections that are
already open: a deleted or renamed file stays readable through their descriptors, and file
permissions do not stop root (these tests may run as root). What does make the database
unreachable to every connection, open or new, is another connection holding the file's
EXCLUSIVE lock (as a backup, a migration or another process can): the outage takes it from a
connection of its own, and each app query waits out its busy timeout and fails with
"database is locked". Restoring ends that transaction.
"""

import socket
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.databases import BACKEND
from tests.support.live_server import fresh_database

# How long an app query waits for a locked SQLite file before it fails (Python's default is
# 5 s, which would only make the outage slower to observe).
SQLITE_BUSY_TIMEOUT = 0.2


class Outage(ABC):
    """`with outage:` makes the database unreachable inside the block, and back after it."""

    @abstractmethod
    def cut(self) -> None: ...

    @abstractmethod
    def restore(self) -> None: ...

    def __enter__(self) -> None:
        self.cut()

    def __exit__(self, *exc_info: object) -> None:
        self.restore()


class TcpProxy(Outage):
    """Forwards loopback connections on `port` to `target`, one thread per direction."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        # Restoring binds the same port again, while the cut connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # the listener was closed: the outage began
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, server]
            for source, sink, upstream in ((client, server, True), (server, client, False)):
                threading.Thread(
                    target=self._forward, args=(source, sink, upstream), daemon=True
                ).start()

    def _forward(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        """Copies one direction (`upstream`: client to server) until either side closes."""
        pump(source, sink)

    def cut(self) -> None:
        _close(self._listener)  # new connections are refused (shutdown wakes the accept)
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            _close(connection)

    def restore(self) -> None:
        self._listener = self._listen(self.port)


class SqliteLock(Outage):
    """Holds the SQLite file's EXCLUSIVE lock from a connection of its own while cut."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._holder: sqlite3.Connection | None = None

    def cut(self) -> None:
        # isolation_level=None: the BEGIN below is ours, not one the module adds itself.
        holder = sqlite3.connect(self.path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        self._holder = holder

    def restore(self) -> None:
        if self._holder is not None:
            self._holder.execute("ROLLBACK")
            self._holder.close()
            self._holder = None


def pump(
    source: socket.socket, sink: socket.socket, watch: Callable[[bytes], None] | None = None
) -> None:
    try:
        while data := source.recv(65536):
            if watch is not None:
                watch(data)
            sink.sendall(data)
    except OSError:
        pass  # cut: the other pump or cut() closed a socket under us
    finally:
        _close(source)
        _close(sink)


def _close(connection: socket.socket) -> None:
    with suppress(OSError):  # already shut down by the other side
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()


@asynccontextmanager
async def interruptible_database(directory: Path) -> AsyncIterator[tuple[str, Outage]]:
    """A fresh database with the app's tables, the URL the app must use to reach it, and the
    switch that takes it away."""
    async with fresh_database(directory) as database_url:
        url = make_url(database_url)
        if BACKEND == "sqlite":
            assert url.database is not None
            lock = SqliteLock(Path(url.database))
            with_timeout = url.update_query_dict({"timeout": str(SQLITE_BUSY_TIMEOUT)})
            try:
                yield with_timeout.render_as_string(hide_password=False), lock
            finally:
                lock.restore()
            return
        proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
        try:
            proxied = url.set(host="127.0.0.1", port=proxy.port)
            yield proxied.render_as_string(hide_password=False), proxy
        finally:
            proxy.cut()  # stop listening, and close what is still connected
