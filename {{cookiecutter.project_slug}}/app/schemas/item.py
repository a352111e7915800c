import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from app.schemas.common import Description, Title
from app.schemas.page import Page


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description | None = None


class ItemUpdate(BaseModel):
    """A partial update: only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    # Omitting the title keeps it; null would blank a required column. So the schema offers a
    # string only (SkipJsonSchema), with no default (a factory's is not documented), and the
    # validator below refuses null.
    title: Title | SkipJsonSchema[None] = Field(default_factory=lambda: None)
    description: Description | None = None

    @field_validator("title")
    @classmethod
    def _title_not_null(cls, value: str | None) -> str | None:
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
