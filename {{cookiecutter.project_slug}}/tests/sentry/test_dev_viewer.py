"""`make sentry-dev`: the loopback receiver run as a process, printing what the app's real SDK
sends it. Each test reads the viewer's own output, as a developer would."""

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from httpx import AsyncClient

from app import sentry
from app.core.config import Settings
from tests.sentry.helpers import TEST_RELEASE, failing_app, sentry_env, unused_port
from tests.support.helpers import PROJECT_ROOT, Account, running
from tools.sentry_dev.view import describe, scrubbed_paths

# Sent in the failing request; the output may show them only as [Filtered].
SECRET_PASSWORD = "hunter2-never-shown"
SECRET_TOKEN = "tok-never-shown"


class Viewer:
    """`python -m tools.sentry_dev PORT`, the command `make sentry-dev` runs."""

    def __init__(self, *, sigint_ignored: bool = False) -> None:
        command = [sys.executable, "-m", "tools.sentry_dev", str(unused_port())]
        if sigint_ignored:
            # What a background job of a shell without job control inherits: SIGINT ignored.
            command = ["sh", "-c", 'trap "" INT; exec "$0" "$@"', *command]
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.first_line = self.process.stdout.readline()
        assert self.first_line.startswith("listening; set SENTRY_DSN="), self.first_line
        self.dsn = self.first_line.strip().partition("=")[2]
        # How to use it, up to "Ctrl-C stops": read before any test stops it.
        self.intro = "".join(iter(self.process.stdout.readline, "Ctrl-C stops\n"))

    def stop(self, how: signal.Signals = signal.SIGTERM) -> str:
        """SIGTERM, as a test runner or process manager stops it (it is never ignored, however
        the suite was started); returns everything it printed after the first line. Call it
        once whatever was sent has been answered: the viewer prints an item before it answers
        the request that carried it."""
        if self.process.poll() is None:
            self.process.send_signal(how)
        output = self.process.communicate(timeout=30)[0]
        assert self.process.returncode == 0, output
        return output


@pytest.fixture
def viewer() -> Iterator[Viewer]:
    running_viewer = Viewer()
    try:
        yield running_viewer
    finally:
        _kill_if_running(running_viewer)


def _kill_if_running(viewer: Viewer) -> None:
    """After a failed test: SIGKILL, which nothing can ignore or delay."""
    if viewer.process.poll() is None:
        viewer.process.kill()
        viewer.process.communicate()


def _environment(**values: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY_")}
    return environment | {"ENVIRONMENT": "test", "SENTRY_RELEASE": TEST_RELEASE} | values


def _block(output: str, header: str) -> str:
    """The lines of the event block that starts with `header`."""
    start = output.index(header)
    end = output.find("\n===", start + 1)
    return output[start : end if end >= 0 else len(output)]


def test_it_starts_with_the_dsn_to_use_and_how_to_use_it(viewer: Viewer) -> None:
    port = viewer.dsn.rpartition(":")[2].partition("/")[0]
    assert viewer.dsn == f"http://testkey@127.0.0.1:{port}/1"
    assert viewer.intro.splitlines() == [
        f"in another terminal: SENTRY_DSN={viewer.dsn} make run",
        f"or send a test event: SENTRY_DSN={viewer.dsn} .venv/bin/python -m app.sentry check",
    ]
    assert viewer.stop().strip() == "received 0 events, 0 transactions, 0 logs"


def test_ctrl_c_stops_it_even_when_sigint_was_inherited_ignored() -> None:
    """`make sentry-dev &` from a script: Ctrl-C (SIGINT) still prints the counts and exits 0,
    as SIGTERM does."""
    started = Viewer(sigint_ignored=True)
    try:
        assert started.stop(signal.SIGINT).strip() == "received 0 events, 0 transactions, 0 logs"
    finally:
        _kill_if_running(started)


async def test_an_error_is_shown_with_its_context_and_secrets_only_as_filtered(
    viewer: Viewer, settings: Settings, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentry_env(
        monkeypatch, dsn=viewer.dsn, traces_sample_rate=1.0, shutdown_timeout=10.0, enable_logs=True
    )
    app = failing_app(settings)
    http: AsyncClient
    async with running(app) as http:
        listed = await http.get("/api/v1/items", headers=owner.headers)
        assert listed.status_code == 200
        failed = await http.post(
            f"/test/leaky?token={SECRET_TOKEN}&page=2",
            json={"password": SECRET_PASSWORD, "title": "kept"},
            headers=owner.headers,
        )
        assert failed.status_code == 500
    # The lifespan's end flushed the SDK's queue: everything sent has been printed.
    output = viewer.stop()

    event = _block(output, f"=== ERROR  event {failed.json()['event_id']}")
    lines = event.splitlines()
    assert lines[1] == "  BoomError: rejected password=[Filtered] token=[Filtered]"
    assert "  route        tests.sentry.helpers.failing_app.<locals>.leaky" in lines
    assert "  request      POST http://testserver/test/leaky?token=[Filtered]&page=2" in lines
    assert f"  user         id={owner.user_id}" in lines
    assert f"  tenant       {owner.tenant_id}" in lines
    assert f"  tags         tenant_id={owner.tenant_id}" in lines
    assert f"  release      {TEST_RELEASE}  environment=test" in lines
    [scrubbed] = [line for line in lines if line.startswith("  scrubbed     ")]
    masked = scrubbed.removeprefix("  scrubbed     ").split(", ")
    assert "request.data.password" in masked
    assert "request.headers.authorization" in masked
    assert "request.query_string (part)" in masked
    assert "exception.values.0.value (part)" in masked
    assert "request.data.title" not in " ".join(masked)

    # A request's trace, one line whichever the SDK's generation (2.x sends a transaction,
    # 3.x streams spans).
    assert "--- transaction GET app.api.routes.items.list_items  status=ok 200  " in output
    # The route's INFO record, as a Sentry log (SENTRY_ENABLE_LOGS): whose request it was.
    assert (
        "--- log INFO  handling password=[Filtered]  (logger app.tests.routes)"
        f"  tenant={owner.tenant_id}  user={owner.user_id}"
    ) in output.splitlines()
    # The start-up line and the route's: the two requests' traces, one error event.
    assert "received 1 events, 2 transactions, 2 logs" in output.splitlines()
    bearer = owner.headers["Authorization"].removeprefix("Bearer ")
    for secret in (SECRET_PASSWORD, SECRET_TOKEN, bearer, owner.email):
        assert secret not in output


def test_the_check_command_shows_up_as_an_info_message(viewer: Viewer) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "app.sentry", "check"],
        cwd=PROJECT_ROOT,
        env=_environment(SENTRY_DSN=viewer.dsn),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    event_id = checked.stdout.split()[2]
    output = viewer.stop()

    lines = _block(output, f"=== INFO  event {event_id}").splitlines()
    assert lines[1] == f"  Sentry check from {sentry.RELEASE_PREFIX} ({TEST_RELEASE})"
    assert f"  release      {TEST_RELEASE}  environment=test" in lines
    assert "  scrubbed     nothing" in lines
    assert "received 1 events, 0 transactions, 0 logs" in output


def test_a_port_in_use_is_named_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "tools.sentry_dev", str(port)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), result.stderr
    assert "Traceback" not in result.stderr


def test_scrubbed_paths_name_whole_and_partial_masks_but_not_sdk_metadata() -> None:
    event = {
        "request": {"headers": {"cookie": "[Filtered]", "accept": "*/*"}},
        "breadcrumbs": {"values": [{"message": "login password=[Filtered] failed"}]},
        "extra": {"ids": [1, "[Filtered]"]},
        "_meta": {"request": {"headers": {"cookie": {"": {"rem": [["!config", "s"]]}}}}},
    }
    assert scrubbed_paths(event) == [
        "request.headers.cookie",
        "breadcrumbs.values.0.message (part)",
        "extra.ids.1",
    ]


def _attributes(values: dict[str, object]) -> dict[str, dict[str, object]]:
    """Attributes as the SDK sends them."""
    return {name: {"value": value, "type": "string"} for name, value in values.items()}


def test_a_streamed_trace_reads_like_a_transaction_and_logs_one_line_each() -> None:
    """What 3.x sends in place of a transaction, and Sentry logs, whichever SDK is installed."""
    segment = {
        "trace_id": "t1",
        "span_id": "s1",
        "name": "app.api.routes.items.list_items",
        "status": "ok",
        "is_segment": True,
        "start_timestamp": 10.0,
        "end_timestamp": 10.0125,
        "attributes": _attributes(
            {
                "sentry.op": "http.server",
                "http.request.method": "GET",
                "http.response.status_code": 200,
            }
        ),
    }
    child = {
        "span_id": "s2",
        "is_segment": False,
        "attributes": _attributes({"sentry.segment.id": "s1"}),
    }
    assert describe("span", {"version": 2, "items": [child, segment]}) == (
        "--- transaction GET app.api.routes.items.list_items  status=ok 200  12.5 ms  1 spans"
        "  trace=t1"
    )
    assert describe("span", {"items": [child]}) == (
        "--- span  1 spans, their request's line in another batch"
    )
    logs = {
        "items": [
            {"level": "warn", "body": "slow", "attributes": _attributes({"logger.name": "app.x"})},
            {
                "level": "info",
                "body": "ok",
                "attributes": _attributes({"tenant_id": "t", "user.id": "u"}),
            },
        ]
    }
    assert describe("log", logs).splitlines() == [
        "--- log WARN  slow  (logger app.x)",
        "--- log INFO  ok  tenant=t  user=u",
    ]
    metrics = {
        "items": [
            {
                "name": "items.created",
                "type": "counter",
                "value": 1.0,
                "attributes": _attributes({"tenant_id": "t", "user.id": "u"}),
            },
            {"name": "queue.depth", "type": "gauge", "value": 3.0, "unit": "item"},
        ]
    }
    assert describe("trace_metric", metrics).splitlines() == [
        "--- metric counter items.created = 1.0  tenant=t  user=u",
        "--- metric gauge queue.depth = 3.0 item",
    ]
