"""The ceiling of the item list: a bare Starlette + asyncpg handler of
`GET /api/v1/items?limit=20&offset=0` that does the work the generated app does for it, with
nothing else. `make bench` serves it on PostgreSQL beside the generated apps, in the same
interleaved rounds, and reports every app's list route as a share of it.

The same work, request for request:
- the bearer token checked as app/core/security.py checks it: HS256 with the same SECRET_KEY,
  the same required claims, `typ` "access", numeric time claims; 401 otherwise;
- the caller must be an active user of the token's tenant, looked up under row-level security
  with the tenant bound (`set_config('app.tenant_id', <tenant>, true)`, local to the
  transaction), as the runtime role the app connects as, in the app's own database;
- a page of `limit` items (newest first, then id) and the total, in the app's JSON shape.

What it leaves out is what the comparison is about: the ORM, dependency injection, pydantic
validation and serialisation, the pool's reset. Binding the tenant, the caller
check, the page and its total are ONE SQL statement, one round trip: the statement's first CTE
calls `set_config('app.tenant_id', $2, true)`, and every later step is joined LATERALly to the
one before it, so PostgreSQL runs the binding first and evaluates the row-level security
policies after it. The setting is local to the statement's implicit transaction: it is gone when
the statement ends. (Were the binding not in force, the policies would hide the caller and the
items, and the answer would be a 401: the bench checks it is equal to the app's before
measuring.) `CEILING_BINDING=transaction` binds as the app binds a transaction instead (every
request did so before issue 14): `BEGIN` and `set_config` in one simple-protocol message, the
statement, `COMMIT`: three round trips. Connections are held in a plain queue, not asyncpg's
pool, whose release costs one more round trip (its reset query) per request.

Run from the "no" project's venv, which has starlette, asyncpg and PyJWT:

    CEILING_DATABASE_URL=postgresql://role@127.0.0.1:5432/db SECRET_KEY=... \\
        .venv/bin/uvicorn --app-dir <template>/tools bench_ceiling:app
"""

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

# The generated project's packages, not the template's: mypy (run in the template's venv) does
# not see them, so each is Any here.
import asyncpg  # type: ignore[import-not-found, unused-ignore]
import jwt  # type: ignore[import-not-found, unused-ignore]
from starlette.applications import Starlette  # type: ignore[import-not-found, unused-ignore]
from starlette.responses import Response  # type: ignore[import-not-found, unused-ignore]
from starlette.routing import Route  # type: ignore[import-not-found, unused-ignore]

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "tid", "typ"]
TIME_CLAIMS = ("exp", "iat", "nbf")
UNAUTHORIZED = {"detail": "Could not validate credentials"}

# The items the caller may see, and the page of them with its total (both queries end so).
_PAGE = """matching AS (
    SELECT i.id, i.tenant_id, i.owner_id, i.title, i.description, i.created_at, i.updated_at
    FROM caller c, LATERAL (SELECT * FROM items i WHERE i.tenant_id = c.tenant_id) i
)
SELECT a.authorized, (SELECT count(*) FROM matching) AS total, p.*
FROM (SELECT EXISTS (SELECT 1 FROM caller) AS authorized) a
LEFT JOIN LATERAL (
    SELECT * FROM matching ORDER BY created_at DESC, id LIMIT $3 OFFSET $4
) p ON true
"""
# The binding, the caller check, the page and the total in one statement. `bound` runs first:
# `caller` is joined LATERALly to it, `matching` to `caller`. `caller` is empty unless the
# token's user is active, in the token's tenant and visible under row-level security; the outer
# row exists whatever the page holds, so an offset past the end still gets its total.
BOUND_QUERY = (
    """
WITH bound AS MATERIALIZED (
    SELECT set_config('app.tenant_id', CAST($2 AS uuid)::text, true) AS tenant
),
caller AS (
    SELECT u.tenant_id FROM bound b, LATERAL (
        SELECT u.tenant_id FROM users u
        WHERE u.id = $1 AND u.tenant_id = $2 AND u.is_active AND b.tenant IS NOT NULL
    ) u
),
"""
    + _PAGE
)
# The same without the binding, for CEILING_BINDING=transaction (the transaction binds).
PAGE_QUERY = (
    """
WITH caller AS (
    SELECT u.tenant_id FROM users u
    WHERE u.id = $1 AND u.tenant_id = $2 AND u.is_active
),
"""
    + _PAGE
)


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Any:
    # FastAPI's JSONResponse renders the same way: compact, UTF-8.
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(content, status, headers, media_type="application/json")


def _claims(authorization: str, secret_key: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(user id, tenant id) of a valid access token, as decode_access_token has them."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        payload = jwt.decode(
            token, secret_key, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS}
        )
        if payload["typ"] != "access":
            return None
        if any(type(payload[claim]) not in (int, float) for claim in TIME_CLAIMS):
            return None
        return uuid.UUID(payload["sub"]), uuid.UUID(payload["tid"])
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
        return None


def _bounded(request: Any, name: str, default: int, low: int, high: int) -> int | None:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        return None
    return value if low <= value <= high else None


def _timestamp(value: datetime) -> str:
    # pydantic writes an aware UTC datetime with a Z.
    return value.isoformat().replace("+00:00", "Z")


class Connections:
    """A fixed set of connections handed out in turn: acquiring and releasing cost nothing."""

    def __init__(self) -> None:
        self.idle: asyncio.Queue[Any] = asyncio.Queue()
        self.all: list[Any] = []

    async def open(self, url: str, size: int) -> None:
        for _ in range(size):
            connection = await asyncpg.connect(url)
            self.all.append(connection)
            self.idle.put_nowait(connection)

    async def close(self) -> None:
        for connection in self.all:
            with contextlib.suppress(Exception):
                await connection.close()

    async def page(
        self, user_id: uuid.UUID, tenant_id: uuid.UUID, limit: int, offset: int
    ) -> list[Any]:
        connection = await self.idle.get()
        try:
            if not BIND_BY_TRANSACTION:
                return list(await connection.fetch(BOUND_QUERY, user_id, tenant_id, limit, offset))
            # str() of a UUID is hex and dashes: safe as a literal.
            await connection.execute(
                f"BEGIN; SELECT set_config('app.tenant_id', '{tenant_id}', true);"
            )
            try:
                return list(await connection.fetch(PAGE_QUERY, user_id, tenant_id, limit, offset))
            finally:
                await connection.execute("COMMIT")
        finally:
            self.idle.put_nowait(connection)


CONNECTIONS = Connections()
SECRET_KEY = os.environ.get("SECRET_KEY", "")
BIND_BY_TRANSACTION = os.environ.get("CEILING_BINDING", "statement") == "transaction"


async def list_items(request: Any) -> Any:
    claims = _claims(request.headers.get("authorization", ""), SECRET_KEY)
    if claims is None:
        return _json(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
    limit = _bounded(request, "limit", 50, 1, 100)
    offset = _bounded(request, "offset", 0, 0, 1_000_000)
    if limit is None or offset is None:
        return _json(422, {"detail": "limit must be 1 to 100, offset 0 to 1000000"})
    user_id, tenant_id = claims
    rows = await CONNECTIONS.page(user_id, tenant_id, limit, offset)
    if not rows[0]["authorized"]:
        return _json(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
    items = [
        {
            "id": str(row["id"]),
            "tenant_id": str(row["tenant_id"]),
            "owner_id": str(row["owner_id"]) if row["owner_id"] is not None else None,
            "title": row["title"],
            "description": row["description"],
            "created_at": _timestamp(row["created_at"]),
            "updated_at": _timestamp(row["updated_at"]),
        }
        for row in rows
        if row["id"] is not None
    ]
    return _json(200, {"total": rows[0]["total"], "limit": limit, "offset": offset, "items": items})


async def health(_request: Any) -> Any:
    return _json(200, {"status": "ok"})


@contextlib.asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    await CONNECTIONS.open(
        os.environ["CEILING_DATABASE_URL"], int(os.environ.get("CEILING_CONNECTIONS", "16"))
    )
    try:
        yield
    finally:
        await CONNECTIONS.close()


app = Starlette(
    routes=[Route("/api/v1/items", list_items), Route("/health", health)], lifespan=lifespan
)
