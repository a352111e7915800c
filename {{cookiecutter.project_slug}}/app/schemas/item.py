import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_validator

from app.schemas.common import Description, Title
from app.schemas.page import Page


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None


class ItemUpdate(BaseModel):
    """A partial update: only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None

    @field_validator("title")
    @classmethod
    def _title_not_null(cls, value: str | None) -> str | None:
        # Omitting the title keeps it; sending null would blank a required column.
        if value is None:
            raise ValueError("title cannot be null; omit it to keep the current one")
        return value


class ItemPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    owner_id: uuid.UUID | None
    title: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class ItemPage(Page):
    items: list[ItemPublic]
