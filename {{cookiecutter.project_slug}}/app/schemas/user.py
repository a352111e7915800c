import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.models.user import UserRole
from app.schemas.common import Email, FullName, Password
from app.schemas.page import Page


class UserCreate(BaseModel):
    """An owner invites a member (or a co-owner) into their tenant."""

    model_config = ConfigDict(extra="forbid")

    email: Email
    password: Password
    full_name: FullName | None = None
    role: UserRole = UserRole.member


class UserPublic(BaseModel):
    """What the API shows of a user: never the password hash."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    full_name: str | None
    role: UserRole
    is_active: bool
    created_at: datetime


class UserPage(Page):
    items: list[UserPublic]
