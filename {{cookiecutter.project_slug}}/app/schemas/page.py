from pydantic import BaseModel, Field


class PageParams(BaseModel):
    """Query parameters of every list route; bounded so one request cannot fetch a table."""

    limit: int = Field(default=50, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class Page(BaseModel):
    """The envelope of a list answer: clients paginate with `total` instead of guessing."""

    total: int
    limit: int
    offset: int
