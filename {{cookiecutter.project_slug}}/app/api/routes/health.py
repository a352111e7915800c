"""Liveness and readiness, as orchestrators probe them.

`GET /health` (liveness) answers from the process alone: a restart cannot bring back a
database, so an orchestrator that restarts on a failed liveness probe must not see one.
`GET /health/ready` (readiness) asks the database, on a plain connection, and answers 503
while it cannot: a load balancer then sends the instance no traffic until it can.
"""

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

router = APIRouter(prefix="/health", tags=["health"])

# SQLite answers `SELECT 1` without reading the database file, so the check would say "ok"
# while every query fails (the file locked by another process, unreadable, corrupt); reading
# the schema version needs the file itself.
SQLITE_READY_QUERY = text("PRAGMA schema_version")
READY_QUERY = text("SELECT 1")


class Liveness(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str


@router.get("", response_model=Liveness)
async def health() -> Liveness:
    """200 while the process serves requests."""
    return Liveness(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "The database is unreachable"}},
)
async def ready(request: Request) -> JSONResponse:
    """200 when the database answers a query, 503 when it does not."""
    engine: AsyncEngine = request.app.state.engine
    sqlite = request.app.state.settings.is_sqlite
    try:
        async with engine.connect() as connection:
            # Outside a transaction: one round trip, not BEGIN, the query and ROLLBACK.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(SQLITE_READY_QUERY if sqlite else READY_QUERY)
    except Exception:  # any failure to reach the database means "not ready"
        body = Readiness(status="unavailable", database="unreachable")
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, content=body.model_dump()
        )
    return JSONResponse(content=Readiness(status="ok", database="ok").model_dump())


# Load balancers probe with HEAD as often as with GET; kept out of the schema (same operation).
router.add_api_route("", health, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False)
