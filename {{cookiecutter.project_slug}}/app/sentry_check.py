"""`python -m app.sentry check`: one test event through the whole pipeline (the app's options,
scrubbing included), sent synchronously so the operator learns whether it was accepted."""

import sys
import urllib.error
import urllib.request
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from sentry_sdk.utils import BadDsn, Dsn

from app.core.config import Settings
from app.sentry import RELEASE_PREFIX, SentrySettings, _options, _read


def _synchronous_transport(options: dict[str, Any], timeout: float) -> Any:
    """Built on demand: the class derives from the SDK's, which may not be installed."""

    class SynchronousTransport(Transport):
        """Sends each envelope at once and remembers the answer, so `check` can tell the
        operator whether the event was accepted (the SDK's own transport sends in the
        background and keeps failures to itself)."""

        def __init__(self, options: dict[str, Any], timeout: float) -> None:
            super().__init__(options)
            self.dsn = str(options["dsn"])
            self.timeout = timeout
            self.outcomes: list[str] = []
            self.failures: list[str] = []

        def capture_envelope(self, envelope: Envelope) -> None:
            auth = Dsn(self.dsn).to_auth(client=f"{RELEASE_PREFIX}-check")
            request = urllib.request.Request(  # noqa: S310 - the URL comes from the DSN
                auth.get_api_url(),
                data=envelope.serialize(),
                headers={
                    "Content-Type": "application/x-sentry-envelope",
                    "X-Sentry-Auth": auth.to_header(),
                },
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    self.outcomes.append(f"HTTP {response.status}")
            except urllib.error.HTTPError as exc:
                self.failures.append(f"the receiver answered HTTP {exc.code} {exc.reason}")
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                self.failures.append(f"could not reach {auth.get_api_url()}: {reason}")

    return SynchronousTransport(options, timeout)


def check(settings: Settings, config: SentrySettings | None = None) -> int:
    """Send one test event through the full pipeline (scrubbing included) and report."""
    config, reason = _read(config)
    if config is None:
        print(f"error: Sentry is off: {reason}", file=sys.stderr)
        return 2
    try:
        dsn = Dsn(config.dsn.get_secret_value())
    except BadDsn:
        print("error: SENTRY_DSN is not a valid DSN", file=sys.stderr)
        return 2
    options = _options(config, settings)
    options |= {"integrations": [], "default_integrations": False}
    transport = _synchronous_transport(options, timeout=config.shutdown_timeout)
    sentry_sdk.init(**options, transport=transport)
    event_id = sentry_sdk.capture_message(
        f"Sentry check from {RELEASE_PREFIX} ({options['release']})", level="info"
    )
    sentry_sdk.flush(timeout=config.shutdown_timeout)
    target = f"{dsn.scheme}://{dsn.host}:{dsn.port}/{dsn.project_id}"
    if transport.failures or not transport.outcomes or event_id is None:
        problem = "; ".join(transport.failures) or "the event was dropped before sending"
        print(f"error: nothing was sent to {target}: {problem}", file=sys.stderr)
        return 1
    print(f"sent event {event_id} to {target} ({transport.outcomes[-1]})")
    return 0
