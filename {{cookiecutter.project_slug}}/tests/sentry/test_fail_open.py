"""Fail-open: a bad Sentry setting leaves Sentry off with one log line that says why, and the
app serves every request correctly. How the app serves and stops whatever the receiver does,
or when the SDK is missing, is the fault matrix in test_faults.py."""

from collections.abc import Iterator
from typing import Any

import pytest

from app import sentry_integration
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
