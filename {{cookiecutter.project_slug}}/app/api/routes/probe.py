"""A route that always fails, mounted only with ERROR_PROBE=true (app/main.py): the error path
of a real request, signed in, for benchmarks and for checking error reporting end to end."""

from fastapi import APIRouter

from app.api.deps import CurrentUser

router = APIRouter(prefix="/probe", tags=["probe"], include_in_schema=False)


class ProbeError(RuntimeError):
    """Raised on purpose: nothing is wrong."""


@router.get("/error")
async def error(user: CurrentUser) -> None:
    raise ProbeError(f"the error probe was called by user {user.id}")
