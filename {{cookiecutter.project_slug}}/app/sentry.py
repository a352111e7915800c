"""Optional error tracking with Sentry: fail-open, scrubbed before sending, tenant-aware.

This is the face: what the rest of the app calls. Every function is a harmless no-op until
`init_sentry()` has succeeded, so callers never check whether Sentry is on.

    python -m app.sentry check     send a test event to SENTRY_DSN and print its id
    python -m app.sentry release   print the release name the app reports

Underneath, nothing of which imports this module: app/sentry_scrubbing.py (the rules for what
may not leave the process), app/sentry_sampling.py (what is traced), app/sentry_repeats.py
(the repeat budget), app/sentry_integration.py (middleware, SQL recorder, SDK hooks) and
app/sentry_telemetry.py (custom spans and metrics, re-exported here).
docs/sentry.md is the guide; docs/adr/0002-optional-sentry.md says why, and lists every place
of an envelope with the rule that covers it.
"""

import asyncio
import logging
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import __version__
from app.core.config import Settings, SettingsError, load_settings
from app.sentry_integration import (
    MAX_BREADCRUMBS,
    QueryRecorder,
    before_breadcrumb,
    before_send,
    before_send_log,
    before_send_metric,
    before_send_span,
    before_send_transaction,
    decorate,
    report,
    state,
    traces_sampler,
)

# Part of the face, though they live underneath: the middleware app/main.py installs, and the
# event id app/api/errors.py puts in a 500 body.
from app.sentry_integration import SentryRequestContext as SentryRequestContext
from app.sentry_integration import event_id_of as event_id_of
from app.sentry_repeats import RepeatBudget
from app.sentry_sdk_bridge import DATA_COLLECTION, unsupported_reason
from app.sentry_sdk_bridge import current as current_generation
from app.sentry_sdk_bridge import traces_sampler as decided_or

# Custom spans and metrics (app/sentry_telemetry.py), no-ops while they would send nothing.
from app.sentry_telemetry import count as count
from app.sentry_telemetry import distribution as distribution
from app.sentry_telemetry import gauge as gauge
from app.sentry_telemetry import span as span

try:
    import sentry_sdk
    from sentry_sdk.integrations.asyncpg import AsyncPGIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
    from sentry_sdk.integrations.starlette import StarletteIntegration
    from sentry_sdk.utils import BadDsn
except ImportError:  # the dependency was removed: the app runs without error tracking
    sentry_sdk = None  # type: ignore[assignment]

Level = Literal["fatal", "error", "warning", "info", "debug"]

# Named, not __name__: `python -m app.sentry` runs this file as __main__.
logger = logging.getLogger("app.sentry")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RELEASE_PREFIX = "{{ cookiecutter.project_slug }}"


class SentrySettings(BaseSettings):
    """SENTRY_* from the environment (and `.env`). A bad value turns Sentry off with one log
    line at start-up instead of stopping the app: error tracking must never take it down."""

    model_config = SettingsConfigDict(
        env_prefix="SENTRY_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    dsn: SecretStr = SecretStr("")  # empty: Sentry off; secret: it holds the project's key
    environment: str = ""  # empty: ENVIRONMENT
    release: str = ""  # empty: <project>@<version>, plus the git SHA when known
    # 5 %, reads a fifth of it: each sampled transaction costs about as much CPU as the
    # request it traces; logins and sign-ups are traced fully (app/sentry_sampling.py).
    traces_sample_rate: float = Field(default=0.05, ge=0, le=1)
    profiles_sample_rate: float = Field(default=0.0, ge=0, le=1)
    debug: bool = False
    send_user_email: bool = False  # e-mail is personal data: off unless opted in
    # The app's log records at LOG_LEVEL as Sentry logs, with the tenant and user as
    # attributes: off unless opted in (each record is an item to send, and a quota to use).
    enable_logs: bool = False
    enable_metrics: bool = True  # the metric helpers, and any sentry_sdk.metrics call
    shutdown_timeout: float = Field(default=2.0, gt=0, le=30)

    @field_validator("dsn")
    @classmethod
    def _looks_like_a_dsn(cls, value: SecretStr) -> SecretStr:
        dsn = value.get_secret_value().strip()
        if dsn:
            parts = urlsplit(dsn)
            try:
                parts.port  # noqa: B018 - raises ValueError when the port is not a port
            except ValueError:
                raise ValueError("has an invalid port") from None
            if parts.scheme not in {"http", "https"} or not parts.username or not parts.hostname:
                # The value itself is not repeated: it holds the project's key.
                raise ValueError("must look like https://PUBLIC_KEY@HOST/PROJECT_ID")
            if not parts.path.rstrip("/").rpartition("/")[2].isdigit():
                raise ValueError("must end with the numeric project id: https://KEY@HOST/ID")
        return SecretStr(dsn)


def load_sentry_settings(**overrides: Any) -> SentrySettings | list[str]:
    """The settings, or one line per refused value, naming the variable but never the value
    (it may hold the key)."""
    try:
        return SentrySettings(**overrides)
    except ValidationError as exc:
        return [
            f"SENTRY_{'.'.join(map(str, error['loc'])).upper()}: "
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        ]


# ---------------------------------------------------------------------------------------------
# Start-up and shutdown.
# ---------------------------------------------------------------------------------------------


# By name: ruff formats `except (A, B):` without parentheses for a 3.14 floor (PEP 758).
_GIT_FAILURES = (OSError, subprocess.SubprocessError)


def _git_sha(directory: Path) -> str | None:
    """The commit the code was deployed from, when it runs from a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - git from PATH
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=2,
            check=False,
        )
    except _GIT_FAILURES:
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{7,40}", sha) else None


def release_name(config: SentrySettings, directory: Path = PROJECT_ROOT) -> str:
    """SENTRY_RELEASE, else <project>@<version>, plus +<git sha> when there is a checkout."""
    if config.release.strip():
        return config.release.strip()
    sha = _git_sha(directory)
    return f"{RELEASE_PREFIX}@{__version__}" + (f"+{sha}" if sha else "")


def _read(config: SentrySettings | None) -> tuple[SentrySettings | None, str | None]:
    """The settings to start with, or None and why Sentry stays off."""
    if (unsupported := unsupported_reason()) is not None:
        return None, unsupported
    loaded = load_sentry_settings() if config is None else config
    if isinstance(loaded, list):
        return None, "; ".join(loaded)
    if not loaded.dsn.get_secret_value():
        return None, "SENTRY_DSN is empty"
    return loaded, None


def _options(config: SentrySettings, settings: Settings) -> dict[str, Any]:
    logs_level = logging.getLevelName(settings.log_level) if config.enable_logs else None
    return {
        "dsn": config.dsn.get_secret_value(),
        "environment": config.environment.strip() or settings.environment,
        "release": release_name(config),
        "debug": config.debug,
        # What the SDK collects by itself, named category by category (the same on 2.x and
        # 3.x, whose defaults differ): no user data but the id we set, no cookies, bodies or
        # frame locals. Every secret word and shape lives in app/sentry_scrubbing.py.
        "data_collection": DATA_COLLECTION,
        # The logging integration and the trace hook: where the generations differ.
        **current_generation().options(
            logs_level=logs_level,
            before_send_transaction=before_send_transaction,
            before_send_span=before_send_span,
        ),
        # SentryRequestContext and QueryRecorder do their work, at a fraction of the cost.
        "disabled_integrations": [
            StarletteIntegration(),
            FastApiIntegration(),
            SqlalchemyIntegration(),
            AsyncPGIntegration(),  # every query is recorded once, through SQLAlchemy
        ],
        "before_send": before_send,
        # Metrics and Sentry logs pass through these hooks alone, never through before_send.
        "before_send_metric": before_send_metric,
        "before_send_log": before_send_log,
        "before_breadcrumb": before_breadcrumb,
        # The SDK's default, named: the SQL breadcrumbs noted per request keep to it too.
        "max_breadcrumbs": MAX_BREADCRUMBS,
        "traces_sampler": decided_or(traces_sampler(config.traces_sample_rate)),
        # Continuous profiling, only while a sampled trace runs (the transaction-based
        # profiles_sample_rate is deprecated in sentry-sdk 2.x).
        "profile_session_sample_rate": config.profiles_sample_rate,
        "profile_lifecycle": "trace",
        "shutdown_timeout": config.shutdown_timeout,
    }


def _warn_if_unreachable(dsn: str, timeout: float) -> None:
    """One log line when nothing listens at the DSN's address; Sentry stays on, since the
    SDK sends again as soon as the receiver is back. Runs in a thread: start-up never waits."""
    parts = urlsplit(dsn)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        logger.warning(
            "Sentry receiver %s:%s is unreachable (%s); events are dropped until it answers",
            host,
            port,
            exc.strerror or type(exc).__name__,
        )


def init_sentry(settings: Settings, config: SentrySettings | None = None) -> bool:
    """Start error tracking with `config` (default: SENTRY_* from the environment). Returns
    False, after one log line saying why, when it stays off; never raises: the app must serve
    with or without Sentry."""
    state.enabled = False
    generation = current_generation()
    config, reason = _read(config)
    options: dict[str, Any] = {}
    if config is not None:
        try:
            options = _options(config, settings)
            # Neither events, breadcrumbs nor Sentry logs (app/sentry_sdk_bridge.py names the
            # lists, which differ between the SDK's generations).
            # Our own warnings: one about a dropped event or log must not be sent in its turn.
            generation.ignore_logger(logger.name)
            # "Exception in ASGI application": every exception uvicorn logs there went through
            # the middleware, which reported it; building the same event twice cost a third
            # of the error path.
            generation.ignore_logger("uvicorn.error")
            # Access-log lines only repeat the request an event already describes (client
            # address and raw query string included); ignored before any record is built.
            generation.ignore_logger("uvicorn.access")
            sentry_sdk.init(**options)  # raises BadDsn for a DSN it cannot parse
            QueryRecorder.listen()
        except BadDsn:
            reason = "SENTRY_DSN is not a valid DSN (https://PUBLIC_KEY@HOST/PROJECT_ID)"
        except Exception as exc:  # fail-open: a broken SDK must not stop the app
            reason = f"initialisation failed ({type(exc).__name__})"
    if config is None or reason is not None:
        logger.warning("Sentry is off: %s", reason)
        return False
    state.enabled = True
    state.send_user_email = config.send_user_email
    state.traces_sample_rate = config.traces_sample_rate
    state.repeats = RepeatBudget()  # each start with a full budget
    state.shutdown_timeout = config.shutdown_timeout
    state.generation = generation
    state.logs_enabled = config.enable_logs
    state.metrics_enabled = config.enable_metrics
    threading.Thread(
        target=_warn_if_unreachable,
        args=(config.dsn.get_secret_value(), config.shutdown_timeout),
        name="sentry-reachability",
        daemon=True,
    ).start()
    logger.info(
        "Sentry is on: environment=%s release=%s traces=%s",
        options["environment"],
        options["release"],
        config.traces_sample_rate,
    )
    return True


async def shutdown() -> None:
    """Send what is queued, waiting at most SENTRY_SHUTDOWN_TIMEOUT seconds, then stop the
    client. The wait runs in a thread, so the loop stays free to finish the last responses."""
    if not state.enabled:
        return
    state.enabled = False
    await asyncio.to_thread(sentry_sdk.get_client().close, timeout=state.shutdown_timeout)
    sentry_sdk.get_global_scope().set_client(None)


# ---------------------------------------------------------------------------------------------
# Context and capture. No-ops while Sentry is off.
# ---------------------------------------------------------------------------------------------


# Who the request's isolation scope was last told about: the auth dependency names the caller
# twice (from the token, then once looked up), and the second call, which only adds an e-mail
# that is not sent by default, then costs nothing.
_user_set: ContextVar[tuple[object, str, str, str | None] | None] = ContextVar(
    "sentry_user_set", default=None
)


def set_user_context(user_id: object, tenant_id: object, email: str | None = None) -> None:
    """Who is calling, for this request only (the SDK forks an isolation scope per request).
    The e-mail is kept only when SENTRY_SEND_USER_EMAIL is on."""
    if not state.enabled:
        return
    scope = sentry_sdk.get_isolation_scope()
    kept_email = email if email and state.send_user_email else None
    told = (scope, str(user_id), str(tenant_id), kept_email)
    if _user_set.get() == told:
        return
    _user_set.set(told)
    user: dict[str, str] = {"id": told[1]}
    if kept_email:
        user["email"] = kept_email
    scope.set_user(user)
    scope.set_tag("tenant_id", told[2])
    scope.set_context("tenant", {"id": told[2]})
    # On every log, metric and (3.x) span of the request: the SDK adds no user attribute
    # itself (data_collection's user_info is off), so the id is named here, like the tenant.
    scope.set_attribute("user.id", told[1])
    scope.set_attribute("tenant_id", told[2])


def capture_exception(
    exc: BaseException, *, fingerprint: Sequence[str] | None = None, **extra: Any
) -> str | None:
    """Report a handled exception; returns the event id (None when Sentry is off or the
    event was dropped). An unhandled one is reported by the request middleware."""
    return report(exc, fingerprint, extra)


def capture_message(
    message: str,
    level: Level = "info",
    *,
    fingerprint: Sequence[str] | None = None,
    **extra: Any,
) -> str | None:
    if not state.enabled:
        return None
    with sentry_sdk.new_scope() as scope:
        decorate(scope, fingerprint, extra)
        return sentry_sdk.capture_message(message, level=level)


def fingerprint(*parts: object) -> list[str]:
    """Group events by these parts instead of by stack trace.

    Pass it to capture_exception/capture_message, or give a domain exception class a
    `sentry_fingerprint` attribute so that even uncaught ones are grouped that way:

        class PaymentDeclined(Exception):
            sentry_fingerprint = fingerprint("payment-declined")
    """
    return [str(part) for part in parts]


def add_breadcrumb(message: str, category: str = "app", level: Level = "info", **data: Any) -> None:
    if state.enabled:
        sentry_sdk.add_breadcrumb(message=message, category=category, level=level, data=data)


def set_tag(key: str, value: str | int | float | bool) -> None:
    if state.enabled:
        sentry_sdk.set_tag(key, value)


def set_context(name: str, values: dict[str, Any]) -> None:
    if state.enabled:
        sentry_sdk.set_context(name, values)


# ---------------------------------------------------------------------------------------------
# python -m app.sentry check | release
# ---------------------------------------------------------------------------------------------


def main(argv: Iterable[str]) -> int:
    command = next(iter(argv), "")
    if command not in {"check", "release"}:
        print("usage: python -m app.sentry check | release", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if command == "check":
        from app.sentry_check import check  # here: app.sentry_check imports this module

        return check(settings)
    config = load_sentry_settings()
    if isinstance(config, list):
        print("error: " + "; ".join(config), file=sys.stderr)
        return 2
    print(release_name(config))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
