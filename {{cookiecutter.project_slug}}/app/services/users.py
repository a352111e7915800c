"""Creating users, shared by sign-up (the owner) and invitations (members)."""

import uuid

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.security import hash_password
from app.db.tenancy import ALL_TENANTS, LOGIN_EMAIL_SETTING
from app.models import User, UserRole

EMAIL_TAKEN = "A user with this e-mail already exists"


class EmailTakenError(Exception):
    """The e-mail belongs to a user of some tenant (the API answers 409, app/api/errors.py)."""


_NAME_LOGIN_EMAIL = text(f"SELECT set_config('{LOGIN_EMAIL_SETTING}', :email, true)")


async def find_user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this e-mail, in whatever tenant: the one cross-tenant read (login, and
    "is this e-mail taken anywhere"). On PostgreSQL row-level security hides other tenants'
    users; naming the exact e-mail for the transaction opens the `login_lookup` policy for
    that one row, for reading only (migrations/versions/0002, docs/adr/0001-…)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(_NAME_LOGIN_EMAIL, {"email": email})
    query = select(User).where(User.email == email).execution_options(**{ALL_TENANTS: True})
    user: User | None = await session.scalar(query)
    return user


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
    if await find_user_by_email(session, email) is not None:
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
