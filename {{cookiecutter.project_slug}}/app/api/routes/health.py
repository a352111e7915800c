from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

router = APIRouter(tags=["health"])

# SQLite answers `SELECT 1` without reading the database file, so the check would say "ok"
# while every query fails (the file locked by another process, unreadable, corrupt); reading
# the schema version needs the file itself.
SQLITE_HEALTH_QUERY = text("PRAGMA schema_version")
HEALTH_QUERY = text("SELECT 1")


class HealthStatus(BaseModel):
    status: str
    database: str


@router.get(
    "/health",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "The database is unreachable"}},
)
async def health(request: Request) -> JSONResponse:
    """Liveness and readiness in one: 200 only when the database answers a query."""
    try:
        async with request.app.state.session_factory() as session:
            sqlite = request.app.state.settings.is_sqlite
            await session.execute(SQLITE_HEALTH_QUERY if sqlite else HEALTH_QUERY)
    except Exception:  # any failure to reach the database means "not ready"
        body = HealthStatus(status="unavailable", database="unreachable")
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, content=body.model_dump()
        )
    return JSONResponse(content=HealthStatus(status="ok", database="ok").model_dump())


# Load balancers probe with HEAD as often as with GET; kept out of the schema (same operation).
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)
