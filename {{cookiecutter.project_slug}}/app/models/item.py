import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, Uuid
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, Timestamps, UTCDateTime, UUIDPrimaryKey, utc_now
from app.db.tenancy import TenantScoped


def _created_at(context: DefaultExecutionContext) -> datetime:
    # A new item is "updated" when it is created, to the microsecond.
    created: datetime | None = (context.current_parameters or {}).get("created_at")
    return created or utc_now()


class Item(UUIDPrimaryKey, Timestamps, TenantScoped, Base):
    __tablename__ = "items"

    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    # The author; kept when the author's account is deleted (the item belongs to the tenant).
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime,
        default=_created_at,
        onupdate=utc_now,
        nullable=False,
        sort_order=100,  # after created_at, so its default is known when this one runs
    )
