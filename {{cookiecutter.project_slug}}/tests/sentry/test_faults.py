"""The Sentry fault matrix: whatever Sentry does, or however it is missing, the app starts,
answers every request of a concurrent burst exactly right, and stops within
SENTRY_SHUTDOWN_TIMEOUT; and once a receiver is back, new events reach it again.

Every fault is a real loopback peer (tools/sentry_dev/receiver.py) talking to the SDK's real HTTP
transport. What that transport (sentry-sdk 2.x, transport.py) does with events during an
outage, and what each case checks:

* connection refused, 500, 503: each event is sent once and dropped; no retry, no back-off.
* 429 with Retry-After: that event is dropped, and for Retry-After seconds every later one
  too, locally, without a request; after that, events are sent again.
* no answer, or a slow one: the one sender thread waits (up to its own 30 s timeout) while
  later events queue (at most 100); once answers come, every queued event is delivered.
"""

import asyncio
import enum
import json
import os
import sys
import textwrap
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Self

import pytest
import sentry_sdk
from httpx import AsyncClient

from app import sentry_integration
from app.core.config import Settings
from tests.sentry.helpers import (
    SENTRY_DEFAULTS,
    capturing_sentry_log,
    exception_types,
    failing_app,
    serve_burst,
    serve_then_stop,
    unused_port,
)
from tests.support.helpers import PROJECT_ROOT, Account
from tools.sentry_dev.receiver import (
    BLACK_HOLE,
    HEALTHY,
    PROJECT_ID,
    PUBLIC_KEY,
    EnvelopeReceiver,
    Fault,
    failing,
    rate_limited,
    slow,
)

SHUTDOWN_TIMEOUT = 1.0
# Stopping also disposes of the database engine and hands the flush to a thread: a few tens of
# milliseconds, with room for a busy machine.
SHUTDOWN_MARGIN = 0.5
RETRY_AFTER = 1  # seconds; short, so the matrix waits out a real back-off in about a second
SLOW_ANSWER = 0.5  # seconds per envelope: a few queued ones outlast the shutdown timeout
# The receiver stamps its 429 just before the SDK reads it and starts its back-off clock.
BACKOFF_SLACK = 0.25
# Refused or unreachable, the burst's envelopes go in well under a second; this is a ceiling.
QUEUE_DRAIN_TIMEOUT = 10.0

# Failing requests after the receiver is back (odd: /test/maybe/{n} raises BoomError), and
# while the app stops during a second outage. Distinct from the burst's, to tell them apart.
COMEBACK_REQUESTS = (1001, 1003, 1005)
LAST_REQUESTS = (2001, 2003, 2005)


class Fate(enum.Enum):
    """What became of the burst's events, sent while the receiver was down."""

    DELIVERED = "held in the queue while the receiver stalled, delivered once it answered"
    TRIED_ONCE = "each sent once, refused, dropped: no retry"
    BACKED_OFF = "the first refused with 429, the rest dropped unsent until Retry-After"
    LOST = "never reached a receiver"


class Outage(ABC):
    """A receiver in trouble from the start, that comes back (`end`) and can fail again
    (`begin`); leaving the `with` block ends whatever it left hanging."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    @abstractmethod
    def dsn(self) -> str: ...

    @property
    @abstractmethod
    def receiver(self) -> EnvelopeReceiver:
        """The receiver while it is up."""

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def end(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class FaultyReceiver(Outage):
    """A receiver that answers with `fault` while the outage lasts."""

    def __init__(self, fault: Fault) -> None:
        self._fault = fault
        self._receiver = EnvelopeReceiver(fault=fault).__enter__()

    @property
    def dsn(self) -> str:
        return self._receiver.dsn

    @property
    def receiver(self) -> EnvelopeReceiver:
        return self._receiver

    def begin(self) -> None:
        self._receiver.fault = self._fault

    def end(self) -> None:
        self._receiver.fault = HEALTHY  # hung requests are answered now

    def close(self) -> None:
        self._receiver.close()  # requests still hung end unanswered


class ClosedPort(Outage):
    """Nothing listens on the DSN's port; coming back is a receiver starting to listen there."""

    def __init__(self) -> None:
        self._port = unused_port()
        self._listening: EnvelopeReceiver | None = None

    @property
    def dsn(self) -> str:
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self._port}/{PROJECT_ID}"

    @property
    def receiver(self) -> EnvelopeReceiver:
        assert self._listening is not None, "nothing listens while the port is closed"
        return self._listening

    def begin(self) -> None:
        self.close()

    def end(self) -> None:
        self._listening = EnvelopeReceiver(self._port).__enter__()

    def close(self) -> None:
        if self._listening is not None:
            self._listening.close()
            self._listening = None


@dataclass(frozen=True)
class Case:
    log: str  # Sentry off: its one log line, exactly; on: a fragment of a line it logs
    dsn: str = ""  # for the cases without a receiver
    outage: Callable[[], Outage] | None = None  # a receiver in trouble: Sentry is on
    fate: Fate = Fate.LOST  # of the burst's events (with Sentry off, there are none)
    without_sdk: bool = False


MUST_LOOK_LIKE_A_DSN = "SENTRY_DSN: must look like https://PUBLIC_KEY@HOST/PROJECT_ID"
SENTRY_IS_ON = "Sentry is on: environment=test release=acme@test"

CASES = [
    pytest.param(Case("Sentry is off: SENTRY_DSN is empty"), id="no-dsn"),
    pytest.param(Case(f"Sentry is off: {MUST_LOOK_LIKE_A_DSN}", dsn="not a dsn"), id="bad-dsn"),
    pytest.param(
        Case(
            "Sentry is off: sentry-sdk is not installed (uv add 'sentry-sdk[fastapi]')",
            dsn="http://key@127.0.0.1:9/1",  # valid: only the missing SDK keeps Sentry off
            without_sdk=True,
        ),
        id="sdk-absent",
    ),
    pytest.param(Case("is unreachable", outage=ClosedPort, fate=Fate.LOST), id="closed-port"),
    pytest.param(
        Case(SENTRY_IS_ON, outage=partial(FaultyReceiver, BLACK_HOLE), fate=Fate.DELIVERED),
        id="black-hole",
    ),
    pytest.param(
        Case(
            SENTRY_IS_ON,
            outage=partial(FaultyReceiver, rate_limited(RETRY_AFTER)),
            fate=Fate.BACKED_OFF,
        ),
        id="429-retry-after",
    ),
    pytest.param(
        Case(SENTRY_IS_ON, outage=partial(FaultyReceiver, failing(500)), fate=Fate.TRIED_ONCE),
        id="500",
    ),
    pytest.param(
        Case(SENTRY_IS_ON, outage=partial(FaultyReceiver, failing(503)), fate=Fate.TRIED_ONCE),
        id="503",
    ),
    pytest.param(
        Case(SENTRY_IS_ON, outage=partial(FaultyReceiver, slow(SLOW_ANSWER)), fate=Fate.DELIVERED),
        id="slow",
    ),
]


@pytest.mark.parametrize("case", CASES)
async def test_whatever_sentry_does_the_app_serves_a_burst_and_stops_in_time(
    case: Case, settings: Settings, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.without_sdk:
        shutdown = await _without_the_sdk(settings, owner, case)
    elif case.outage is None:
        _configure(monkeypatch, case.dsn)
        shutdown = await _with_sentry_off(settings, owner, case)
    else:
        shutdown = await _through_an_outage(settings, owner, case, case.outage, monkeypatch)
    assert shutdown <= SHUTDOWN_TIMEOUT + SHUTDOWN_MARGIN
    assert not sentry_integration.state.enabled


def _sentry_environment(dsn: str) -> dict[str, str]:
    values = SENTRY_DEFAULTS | {"dsn": dsn, "shutdown_timeout": str(SHUTDOWN_TIMEOUT)}
    return {f"SENTRY_{name.upper()}": value for name, value in values.items()}


def _configure(monkeypatch: pytest.MonkeyPatch, dsn: str) -> None:
    for name, value in _sentry_environment(dsn).items():
        monkeypatch.setenv(name, value)


async def _with_sentry_off(settings: Settings, owner: Account, case: Case) -> float:
    with capturing_sentry_log() as log:
        app = failing_app(settings)
        shutdown = await serve_then_stop(app, partial(serve_burst, account=owner, sentry_on=False))
    assert log.messages == [case.log]
    return shutdown


async def _through_an_outage(
    settings: Settings,
    owner: Account,
    case: Case,
    outage_factory: Callable[[], Outage],
    monkeypatch: pytest.MonkeyPatch,
) -> float:
    """Down from the start; back after the burst; down again while the app stops."""
    with outage_factory() as outage, capturing_sentry_log() as log:
        _configure(monkeypatch, outage.dsn)
        app = failing_app(settings)

        async def work(http: AsyncClient) -> None:
            burst_ids = await serve_burst(http, owner, sentry_on=True)
            if case.fate is not Fate.DELIVERED:
                # The worker finishes with the burst while the fault lasts: on a busy machine
                # it could still be sending when the receiver came back, and deliver the tail.
                await asyncio.to_thread(sentry_sdk.flush, timeout=QUEUE_DRAIN_TIMEOUT)
            outage.end()
            await _new_events_arrive(http, owner, outage.receiver)
            # The events arrived in order from one queue: the burst's fate is settled.
            _assert_fate(case.fate, outage.receiver, burst_ids)
            outage.begin()
            await _fail(http, owner, LAST_REQUESTS)  # queued when the app stops

        shutdown = await serve_then_stop(app, work)
        log.wait_for(case.log)
    return shutdown


async def _fail(http: AsyncClient, owner: Account, numbers: tuple[int, ...]) -> list[str]:
    """Request /test/maybe/{n} for odd numbers; returns the event ids of the 500s."""
    event_ids = []
    for n in numbers:
        answer = await http.get(f"/test/maybe/{n}", headers=owner.headers)
        assert answer.status_code == 500, answer.text
        event_ids.append(answer.json()["event_id"])
    return event_ids


async def _new_events_arrive(http: AsyncClient, owner: Account, receiver: EnvelopeReceiver) -> None:
    # After a 429 the SDK sends nothing until Retry-After has passed (0 for other faults).
    await asyncio.sleep(max(0.0, receiver.backoff_until + BACKOFF_SLACK - time.monotonic()))
    event_ids = await _fail(http, owner, COMEBACK_REQUESTS)
    for n, event_id in zip(COMEBACK_REQUESTS, event_ids, strict=True):
        event = _arrived(receiver, event_id)
        assert exception_types(event) == ["BoomError"]
        assert event["exception"]["values"][-1]["value"] == f"odd request {n}"
        assert event["tags"]["tenant_id"] == str(owner.tenant_id)
        assert event["user"] == {"id": str(owner.user_id)}


def _arrived(receiver: EnvelopeReceiver, event_id: str) -> dict[str, Any]:
    return receiver.wait_for_event(lambda event: event["event_id"] == event_id)


def _assert_fate(fate: Fate, receiver: EnvelopeReceiver, burst_ids: list[str]) -> None:
    delivered = {event["event_id"] for event in receiver.events}
    refused = [
        event_id
        for delivery in receiver.refused
        for event_id in delivery.event_ids
        if event_id in burst_ids
    ]
    if fate is Fate.DELIVERED:
        assert set(burst_ids) <= delivered
    else:
        assert set(burst_ids) & delivered == set()
    if fate is Fate.TRIED_ONCE:
        assert sorted(refused) == sorted(burst_ids)
    elif fate is Fate.BACKED_OFF:
        # One request per Retry-After window, not one per event (the burst takes well
        # under a second, so it is one in practice).
        assert 1 <= len(refused) < len(burst_ids)
    else:
        assert refused == []


# The sdk-absent case: a fresh interpreter where importing sentry_sdk fails, running the same
# burst against the same database as the test (the parent hands over what it needs on stdin).
WITHOUT_SDK = textwrap.dedent(
    """
    import asyncio, importlib.abc, json, sys, uuid

    class NoSentry(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sentry_sdk" or name.startswith("sentry_sdk."):
                raise ImportError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, NoSentry())

    from app.core.config import load_settings
    from tests.support.helpers import Account
    from tests.sentry.helpers import failing_app, serve_burst, serve_then_stop

    given = json.load(sys.stdin)
    account = Account(
        tenant_id=uuid.UUID(given["tenant_id"]), user_id=uuid.UUID(given["user_id"]),
        email=given["email"], headers=given["headers"],
    )
    settings = load_settings(
        database_url=given["database_url"], environment="test", secret_key=given["secret_key"]
    )
    shutdown = asyncio.run(serve_then_stop(
        failing_app(settings), lambda http: serve_burst(http, account, sentry_on=False)
    ))
    print(json.dumps({"shutdown": shutdown, "sentry_sdk_imported": "sentry_sdk" in sys.modules}))
    """
)


async def _without_the_sdk(settings: Settings, owner: Account, case: Case) -> float:
    given = {
        "database_url": settings.database_url,
        "secret_key": settings.secret_key.get_secret_value(),  # on stdin, not in argv
        "tenant_id": str(owner.tenant_id),
        "user_id": str(owner.user_id),
        "email": owner.email,
        "headers": owner.headers,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WITHOUT_SDK,
        cwd=PROJECT_ROOT,
        env=os.environ | _sentry_environment(case.dsn),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(json.dumps(given).encode()), 120)
    finally:
        if process.returncode is None:  # timed out or cancelled: no process outlives its test
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    outcome = json.loads(out)
    assert outcome["sentry_sdk_imported"] is False
    off = [line for line in err.decode().splitlines() if "Sentry is off" in line]
    assert off == [f"WARNING:     app.sentry: {case.log}"]
    return float(outcome["shutdown"])
