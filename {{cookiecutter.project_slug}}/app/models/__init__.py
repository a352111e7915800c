"""Every model is imported here so `Base.metadata` is complete for Alembic and the tests."""

from app.models.item import Item
from app.models.login_failure import LoginFailure
from app.models.tenant import Tenant
from app.models.user import User, UserRole

__all__ = ["Item", "LoginFailure", "Tenant", "User", "UserRole"]
