"""Exception handlers: every failure leaves as JSON with the status it deserves."""

import json
import logging
import socket
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from starlette.routing import Match

{% if cookiecutter.include_sentry == "yes" -%}
# Sentry seam: reports the errors handled here, and names the event in a 500 body.
from app import sentry
{% endif -%}
from app.services.users import EMAIL_TAKEN, EmailTakenError

logger = logging.getLogger(__name__)

# Raised by the drivers, unwrapped, when no connection can be made at all.
CONNECTION_ERRORS = (ConnectionError, TimeoutError, socket.gaierror)

INTERNAL_ERROR_BODY = {"detail": "Internal Server Error"}


def _internal_error_body(exc: Exception) -> dict[str, str]:
{%- if cookiecutter.include_sentry == "yes" %}
    # Sentry seam: the id of the event the error was reported as (by the request middleware,
    # or by the handler that caught it) lets support find the report behind a screenshot.
    if event_id := sentry.event_id_of(exc):
        return {**INTERNAL_ERROR_BODY, "event_id": event_id}
{%- endif %}
    return INTERNAL_ERROR_BODY


def is_database_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (*CONNECTION_ERRORS, OperationalError)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class StrictJSONResponse(JSONResponse):
    """JSON any client can parse: ASCII only (a lone surrogate cannot be encoded as UTF-8 and
    would crash the default response into a 500) and no NaN/Infinity (not JSON at all)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


def _plain(value: Any) -> str | int | bool | None:
    if value is None or isinstance(value, str | bool | int):
        return value
    return str(value)  # floats (NaN too), Decimals, exceptions: as text


def _describe(error: Any) -> dict[str, Any]:
    """What a client needs to fix its request. The rejected `input` is left out: it would
    echo passwords and tokens back, and uploaded files' internals with them."""
    described = {"type": error["type"], "loc": list(error["loc"]), "msg": error["msg"]}
    if context := error.get("ctx"):
        described["ctx"] = {key: _plain(value) for key, value in context.items()}
    return described


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return StrictJSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [_describe(error) for error in errors]},
    )


# RFC 9110's methods, and PATCH (RFC 5789).
_HTTP_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def _allowed_methods(request: Request) -> list[str]:
    """The methods the request's path serves, as the router itself decides."""
    allowed: list[str] = []
    for method in _HTTP_METHODS:
        # A fresh scope: matching records what it finds in the one it is given.
        scope = {
            "type": "http",
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "method": method,
        }
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    # Starlette answers 405 from the first route whose path matches, naming that route's methods
    # alone; FastAPI makes one route per method, so `Allow` missed the path's others (RFC 9110
    # wants them all).
    return JSONResponse(
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        content={"detail": "Method Not Allowed"},
        headers={"Allow": ", ".join(_allowed_methods(request))},
    )


async def _email_taken(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": EMAIL_TAKEN})


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    # Two requests racing past the same uniqueness check: the loser gets 409, not 500.
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={"detail": "The request conflicts with existing data"},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
{%- if cookiecutter.include_sentry == "yes" %}
    # Sentry seam: handled here, so reported here, once: an outage or a bug in a query.
    sentry.capture_exception(exc)
{%- endif %}
    if is_database_unavailable(exc):
        logger.warning("database unavailable on %s: %r", request.url.path, exc)
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "The database is unavailable; try again shortly"},
            headers={"Retry-After": "5"},
        )
    # A real bug in a query: handled here, so report and log it ourselves.
    body = _internal_error_body(exc)
    logger.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, content=body)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, and the server logs the traceback once.
    return JSONResponse(
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR, content=_internal_error_body(exc)
    )


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)
    app.add_exception_handler(EmailTakenError, _email_taken)
    app.add_exception_handler(IntegrityError, _conflict)
    for exc_class in (DBAPIError, *CONNECTION_ERRORS):
        app.add_exception_handler(exc_class, _database_error)
    app.add_exception_handler(Exception, _internal_error)
