"""The error route: always fails, mounted only with ERROR_ROUTE=true (app/main.py). The error
path of a real request, signed in, for benchmarks and for checking error reporting end to end."""

from fastapi import APIRouter

from app.api.deps import CurrentUser

router = APIRouter(tags=["error"], include_in_schema=False)


class DeliberateError(RuntimeError):
    """Raised on purpose: nothing is wrong."""


@router.get("/error")
async def fail(user: CurrentUser) -> None:
    raise DeliberateError(f"the error route was called by user {user.id}")
