"""Fail-open: a bad Sentry setting leaves Sentry off with one log line that says why, and the
app serves every request correctly. How the app serves and stops whatever the receiver does,
or when the SDK is missing, is the fault matrix in test_faults.py."""

from collections.abc import Iterator
from typing import Any

import pytest

from app import sentry_integration, sentry_sdk_bridge
from app.core.config import Settings, SettingsError, load_settings
from tests.sentry.helpers import SentryLog, capturing_sentry_log, failing_app, sentry_env
from tests.support.helpers import Account, running


@pytest.fixture
def sentry_log() -> Iterator[SentryLog]:
    with capturing_sentry_log() as records:
        yield records


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


# An empty and a malformed SENTRY_DSN are cases of the fault matrix (test_faults.py).
@pytest.mark.parametrize(
    ("sentry_values", "reason"),
    [
        pytest.param(
            {"dsn": "https://o1.ingest.example/42"},
            "SENTRY_DSN: must look like https://PUBLIC_KEY@HOST/PROJECT_ID",
            id="dsn-without-key",
        ),
        pytest.param(
            {"dsn": "http://key@127.0.0.1:9/1", "traces_sample_rate": "1.5"},
            "SENTRY_TRACES_SAMPLE_RATE: Input should be less than or equal to 1",
            id="bad-sample-rate",
        ),
        pytest.param(
            {"dsn": "http://key@127.0.0.1:9/1", "debug": "maybe"},
            "SENTRY_DEBUG: Input should be a valid boolean, unable to interpret input",
            id="bad-debug-flag",
        ),
    ],
)
async def test_sentry_stays_off_with_one_log_line_and_the_app_serves(
    settings: Settings,
    owner: Account,
    sentry_log: SentryLog,
    sentry_values: dict[str, Any],
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sentry_env(monkeypatch, **sentry_values)
    body = await _serves_normally(settings, owner)
    assert body == {"detail": "Internal Server Error"}  # no event id: nothing was reported
    assert sentry_log.messages == [f"Sentry is off: {reason}"]
    assert not sentry_integration.state.enabled


def test_a_bad_sentry_setting_does_not_hide_other_bad_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "lots")
    with pytest.raises(SettingsError) as raised:
        load_settings(secret_key="short")
    assert "SECRET_KEY" in str(raised.value)
    assert "SENTRY" not in str(raised.value)


SUPPORTED_TOO = "this app supports 2.75 or later, or 3.x"


@pytest.mark.parametrize(
    ("version", "problem"),
    [
        ("2.75.0", None),
        ("2.80.1", None),
        ("3.0.0b2", None),
        ("3.4.0", None),
        (None, "sentry-sdk is not installed (uv add 'sentry-sdk[fastapi]')"),
        ("1.45.1", f"sentry-sdk 1.45.1 is not supported ({SUPPORTED_TOO})"),
        ("2.44.0", f"sentry-sdk 2.44.0 is not supported ({SUPPORTED_TOO})"),
        ("4.0.0a1", f"sentry-sdk 4.0.0a1 is not supported ({SUPPORTED_TOO})"),
        ("dev", f"sentry-sdk dev is not supported ({SUPPORTED_TOO})"),
    ],
)
def test_an_sdk_out_of_range_is_named_in_the_reason(version: str | None, problem: str) -> None:
    # Not installed is said only when it is not; a real 2.44 SDK saying so, through the app's
    # start-up log, is proven by the template's tests (tests/test_sentry_sdk3.py).
    assert sentry_sdk_bridge.problem_with(version) == problem
