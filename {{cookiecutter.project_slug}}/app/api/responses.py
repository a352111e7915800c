"""The error answers the routes can give besides their success, documented in the OpenAPI
schema with their bodies: clients (and the schema-driven tests) can rely on every status.

Every one of them is `{"detail": "<message>"}`, except 422, whose shape FastAPI documents
itself (app/api/errors.py renders it).
"""

from typing import Any

from pydantic import BaseModel

Responses = dict[int | str, dict[str, Any]]


class ErrorMessage(BaseModel):
    detail: str


def error(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One documented error answer; `headers` maps a response header to its description."""
    documented: dict[str, Any] = {"model": ErrorMessage, "description": description}
    if headers:
        documented["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return documented


# Routes that read a request body: FastAPI answers 400 when it cannot parse one at all (a
# malformed multipart form, JSON in an encoding it cannot decode), and
# app/api/body_limit.py answers 413 when it is too large.
BODY_ERRORS: Responses = {
    400: error("The request body could not be parsed"),
    413: error("The request body is larger than MAX_REQUEST_BODY_BYTES"),
}

# Routes behind the bearer token (app/api/deps.py).
AUTH_ERRORS: Responses = {
    401: error(
        "Missing, invalid or expired token, or the user is gone or deactivated",
        {"WWW-Authenticate": "The scheme to authenticate with: Bearer"},
    ),
}

# Every route that needs the database (app/api/errors.py).
DATABASE_ERRORS: Responses = {
    503: error(
        "The database is unavailable; try again shortly",
        {"Retry-After": "Seconds to wait before retrying"},
    ),
}
