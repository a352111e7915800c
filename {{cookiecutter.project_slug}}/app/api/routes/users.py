from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, select

from app.api.deps import CurrentOwner, CurrentUser, SessionDep
from app.api.routes.tenants import EMAIL_TAKEN
from app.core.security import hash_password
from app.db.tenancy import ALL_TENANTS
from app.models import User
from app.schemas.page import PageParams
from app.schemas.user import UserCreate, UserPage, UserPublic

router = APIRouter(prefix="/users", tags=["users"])


@router.get("/me", response_model=UserPublic)
async def read_me(user: CurrentUser) -> User:
    return user


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={403: {"description": "Caller is not an owner"}, 409: {"description": EMAIL_TAKEN}},
)
async def invite_user(body: UserCreate, owner: CurrentOwner, session: SessionDep) -> User:
    """An owner adds a user to their own tenant (never to another one)."""
    # E-mails are unique across tenants (they choose the tenant at login), so look everywhere.
    taken = select(User.id).where(User.email == body.email).execution_options(**{ALL_TENANTS: True})
    if await session.scalar(taken):
        raise HTTPException(status.HTTP_409_CONFLICT, detail=EMAIL_TAKEN)
    user = User(
        tenant_id=owner.tenant_id,
        email=body.email,
        hashed_password=hash_password(body.password),
        full_name=body.full_name,
        role=body.role,
    )
    session.add(user)
    await session.commit()
    return user


@router.get("", response_model=UserPage)
async def list_users(
    user: CurrentUser, session: SessionDep, page: Annotated[PageParams, Query()]
) -> UserPage:
    in_tenant = User.tenant_id == user.tenant_id
    total = await session.scalar(select(func.count()).select_from(User).where(in_tenant))
    rows = await session.scalars(
        select(User)
        .where(in_tenant)
        .order_by(User.created_at, User.id)
        .limit(page.limit)
        .offset(page.offset)
    )
    return UserPage(
        items=[UserPublic.model_validate(row) for row in rows],
        total=total or 0,
        limit=page.limit,
        offset=page.offset,
    )
