"""The app as it runs in production, for tests that need real HTTP: uvicorn serving it from a
background thread on a loopback port, with a throw-away database of its own.

The server thread runs its own event loop, and the app's engine (created in the lifespan) is
bound to that loop: such an app must not share the session-wide `app` fixture's engine.
"""

import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.base import Base
from tests.support.databases import (
    BACKEND,
    create_postgres_database,
    drop_postgres_database,
    sqlite_url,
)

STARTUP_TIMEOUT = 30.0  # seconds; also the longest wait for a clean shutdown


@asynccontextmanager
async def fresh_database(directory: Path) -> AsyncIterator[str]:
    """The URL of a new database with the app's tables and no rows: a SQLite file in
    `directory`, or a PostgreSQL database next to TEST_DATABASE_URL's, dropped afterwards."""
    url = sqlite_url(directory) if BACKEND == "sqlite" else await create_postgres_database()
    try:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
        finally:
            await engine.dispose()
        yield url
    finally:
        if BACKEND == "postgresql":
            await drop_postgres_database(url)


class LiveServer:
    """`with LiveServer(app) as server:` serves `app` at `server.url` until the block ends
    (lifespan included: the app opens its engine on start and disposes it on exit)."""

    def __init__(self, app: FastAPI) -> None:
        # Bound before uvicorn starts, so the URL is known without parsing its log.
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        # log_config=None: uvicorn leaves the app's logging configuration alone.
        config = uvicorn.Config(app, lifespan="on", log_config=None, access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        if not self._wait_until_started():
            self._stop()
            raise RuntimeError(f"uvicorn did not start serving {self.url}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()

    def _wait_until_started(self) -> bool:
        # uvicorn sets `started` once the lifespan has run and the socket accepts; a failed
        # start-up ends the thread instead.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self._thread.is_alive() and not self._server.started:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return self._server.started

    def _stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STARTUP_TIMEOUT)
        self._socket.close()
