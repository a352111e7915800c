from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

Row = TypeVar("Row")


async def fetch_page(
    session: AsyncSession, statement: Select[Row], *, limit: int, offset: int
) -> tuple[Sequence[Row], int]:
    """One page of `statement` (already filtered and ordered) and the total it would return."""
    count: Select[Any] = select(func.count()).select_from(statement.order_by(None).subquery())
    total = await session.scalar(count)
    rows = await session.scalars(statement.limit(limit).offset(offset))
    return rows.all(), total or 0
