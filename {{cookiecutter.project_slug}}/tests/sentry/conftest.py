"""Fixtures only the Sentry tests use."""

from collections.abc import Iterator

import pytest

from tools.sentry_dev.receiver import EnvelopeReceiver


@pytest.fixture
def receiver() -> Iterator[EnvelopeReceiver]:
    with EnvelopeReceiver() as running_receiver:
        yield running_receiver
