"""Fail-open: whatever is wrong with Sentry, the app starts, serves every request correctly,
says in one log line why Sentry is off, and shuts down within the configured timeout."""

import logging
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from app import sentry
from app.core.config import Settings, SettingsError, load_settings
from tests.helpers import PROJECT_ROOT, Account, running
from tests.sentry_helpers import failing_app, sentry_settings, unused_port

SHUTDOWN_TIMEOUT = 1.0
SHUTDOWN_MARGIN = 2.0  # the lifespan's own work (engine disposal) on a slow machine


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def wait_for(self, fragment: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if fragment in message:
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no log line with {fragment!r}; got {self.messages}")


@pytest.fixture
def sentry_log() -> Iterator[Records]:
    """What app/sentry.py logs (the app's loggers do not propagate to pytest's caplog)."""
    records = Records()
    sentry_logger = logging.getLogger("app.sentry")
    sentry_logger.addHandler(records)
    try:
        yield records
    finally:
        sentry_logger.removeHandler(records)


async def _serves_normally(settings: Settings, owner: Account) -> dict[str, Any]:
    """Start the app, check it answers correctly, and return what the failing route said."""
    async with running(failing_app(settings)) as http:
        assert (await http.get("/health")).status_code == 200
        listed = await http.get("/api/v1/items", headers=owner.headers)
        assert listed.status_code == 200
        assert listed.json()["items"] == []
        failed = await http.get("/test/boom", headers=owner.headers)
        assert failed.status_code == 500
        body: dict[str, Any] = failed.json()
        return body


@pytest.mark.parametrize(
    ("sentry_values", "reason"),
    [
        pytest.param({}, "SENTRY_DSN is empty", id="no-dsn"),
        pytest.param(
            {"sentry_dsn": "not a dsn"},
            "SENTRY_DSN: must look like https://PUBLIC_KEY@HOST/PROJECT_ID",
            id="malformed-dsn",
        ),
        pytest.param(
            {"sentry_dsn": "https://o1.ingest.example/42"},
            "SENTRY_DSN: must look like https://PUBLIC_KEY@HOST/PROJECT_ID",
            id="dsn-without-key",
        ),
        pytest.param(
            {"sentry_dsn": "http://key@127.0.0.1:9/1", "sentry_traces_sample_rate": "1.5"},
            "SENTRY_TRACES_SAMPLE_RATE: Input should be less than or equal to 1",
            id="bad-sample-rate",
        ),
        pytest.param(
            {"sentry_dsn": "http://key@127.0.0.1:9/1", "sentry_debug": "maybe"},
            "SENTRY_DEBUG: Input should be a valid boolean, unable to interpret input",
            id="bad-debug-flag",
        ),
    ],
)
async def test_sentry_stays_off_with_one_log_line_and_the_app_serves(
    settings: Settings,
    owner: Account,
    sentry_log: Records,
    sentry_values: dict[str, Any],
    reason: str,
) -> None:
    body = await _serves_normally(sentry_settings(settings, **sentry_values), owner)
    assert body == {"detail": "Internal Server Error"}  # no event id: nothing was reported
    assert sentry_log.messages == [f"Sentry is off: {reason}"]
    assert not sentry.is_enabled()


def test_a_bad_sentry_setting_does_not_hide_other_bad_settings(settings: Settings) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(secret_key="short", sentry_traces_sample_rate="lots")
    assert "SECRET_KEY" in str(raised.value)
    assert "SENTRY" not in str(raised.value)


async def test_a_closed_port_is_logged_and_events_are_dropped_without_delay(
    settings: Settings, owner: Account, sentry_log: Records
) -> None:
    port = unused_port()
    configured = sentry_settings(
        settings,
        sentry_dsn=f"http://key@127.0.0.1:{port}/1",
        sentry_shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    started = time.monotonic()
    body = await _serves_normally(configured, owner)
    elapsed = time.monotonic() - started
    assert set(body) == {"detail", "event_id"}  # captured, though it cannot be delivered
    assert f"Sentry receiver 127.0.0.1:{port} is unreachable" in sentry_log.wait_for("unreachable")
    assert elapsed < SHUTDOWN_TIMEOUT + SHUTDOWN_MARGIN


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


async def test_shutdown_with_a_black_hole_receiver_is_bounded_by_the_timeout(
    settings: Settings, owner: Account, black_hole: int
) -> None:
    configured = sentry_settings(
        settings,
        sentry_dsn=f"http://key@127.0.0.1:{black_hole}/1",
        sentry_shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    app = failing_app(configured)
    async with running(app) as http:
        for _ in range(5):
            assert (await http.get("/test/boom", headers=owner.headers)).status_code == 500
        assert (await http.get("/health")).status_code == 200
        shutdown_started = time.monotonic()
    assert time.monotonic() - shutdown_started < SHUTDOWN_TIMEOUT + SHUTDOWN_MARGIN
    assert not sentry.is_enabled()


def test_the_app_serves_when_sentry_sdk_is_not_installed(tmp_path: Any) -> None:
    script = textwrap.dedent(
        """
        import asyncio, importlib.abc, secrets, sys

        class NoSentry(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "sentry_sdk" or name.startswith("sentry_sdk."):
                    raise ImportError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, NoSentry())

        from app.core.config import load_settings
        from tests.sentry_helpers import failing_app
        from tests.helpers import running

        async def main():
            settings = load_settings(
                database_url=sys.argv[1], environment="test",
                secret_key=secrets.token_urlsafe(32), sentry_dsn="http://key@127.0.0.1:9/1",
            )
            app = failing_app(settings)
            async with running(app) as http:
                print("health", (await http.get("/health")).status_code)
                print("docs", (await http.get("/openapi.json")).status_code)
            print("sentry_sdk imported:", "sentry_sdk" in sys.modules)

        asyncio.run(main())
        """
    )
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    result = subprocess.run(
        [sys.executable, "-c", script, database_url],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "health 200",
        "docs 200",
        "sentry_sdk imported: False",
    ]
    off = [line for line in result.stderr.splitlines() if "Sentry is off" in line]
    assert off == [
        "WARNING:     app.sentry: Sentry is off: "
        "sentry-sdk is not installed (pip install 'sentry-sdk[fastapi]')"
    ]
