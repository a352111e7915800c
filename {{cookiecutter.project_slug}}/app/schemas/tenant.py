import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from app.schemas.common import Email, FullName, Password, TenantName
from app.schemas.user import UserPublic


class TenantSignup(BaseModel):
    """Creates a tenant and its first user, the owner."""

    model_config = ConfigDict(extra="forbid")

    tenant_name: TenantName
    email: Email
    password: Password
    full_name: FullName | None = None


class TenantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    created_at: datetime


class TenantSignupResult(BaseModel):
    tenant: TenantPublic
    owner: UserPublic
