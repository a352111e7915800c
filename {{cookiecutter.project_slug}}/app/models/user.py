import enum

from sqlalchemy import Boolean, Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, Timestamps, UUIDPrimaryKey
from app.db.tenancy import TenantScoped


class UserRole(enum.StrEnum):
    owner = "owner"  # signed the tenant up; may invite members
    member = "member"


class User(UUIDPrimaryKey, Timestamps, TenantScoped, Base):
    __tablename__ = "users"

    # Unique across tenants: the login form has no tenant field, the e-mail selects it.
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True, nullable=False)
    hashed_password: Mapped[str] = mapped_column(String(255), nullable=False)
    full_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[UserRole] = mapped_column(
        Enum(UserRole, native_enum=False, length=16, validate_strings=True),
        default=UserRole.member,
        nullable=False,
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
