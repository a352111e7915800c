"""Creating users, shared by sign-up (the owner) and invitations (members)."""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import hash_password
from app.db.tenancy import ALL_TENANTS
from app.models import User, UserRole

EMAIL_TAKEN = "A user with this e-mail already exists"


class EmailTakenError(Exception):
    """The e-mail belongs to a user of some tenant (the API answers 409, app/api/errors.py)."""


async def add_user(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    email: str,
    password: str,
    full_name: str | None,
    role: UserRole,
) -> User:
    """Add (not commit) a user; EmailTakenError when the e-mail is taken in any tenant, since
    e-mails choose the tenant at login. A race past this check ends in the unique index."""
    taken = select(User.id).where(User.email == email).execution_options(**{ALL_TENANTS: True})
    if await session.scalar(taken):
        raise EmailTakenError(EMAIL_TAKEN)
    user = User(
        tenant_id=tenant_id,
        email=email,
        hashed_password=await hash_password(password),
        full_name=full_name,
        role=role,
    )
    session.add(user)
    return user
