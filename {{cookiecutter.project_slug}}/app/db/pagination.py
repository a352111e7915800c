from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

Row = TypeVar("Row")


async def fetch_page(
    session: AsyncSession, statement: Select[Row], *, limit: int, offset: int
) -> tuple[Sequence[Row], int]:
    """One page of `statement` (one entity, already filtered and ordered) and the total it
    would return, in one query: each row carries the total as `count(*) OVER ()`. Only a page
    past the end, which has no row to carry it, costs a second query."""
    with_total: Select[Any] = statement.add_columns(func.count().over().label("total"))
    rows = (await session.execute(with_total.limit(limit).offset(offset))).all()
    if rows:
        return [row[0] for row in rows], rows[0].total
    if offset == 0:
        return [], 0
    count: Select[Any] = select(func.count()).select_from(statement.order_by(None).subquery())
    return [], await session.scalar(count) or 0
