from typing import Annotated

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from app.api.deps import CurrentOwner, CurrentUser, SessionDep
from app.api.responses import AUTH_ERRORS, BODY_ERRORS, error
from app.db.pagination import fetch_page
from app.models import User
from app.schemas.page import PageParams
from app.schemas.user import UserCreate, UserPage, UserPublic
from app.services.users import EMAIL_TAKEN, add_user

router = APIRouter(prefix="/users", tags=["users"], responses=AUTH_ERRORS)


@router.get("/me", response_model=UserPublic)
async def read_me(user: CurrentUser) -> User:
    return user


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={
        **BODY_ERRORS,
        403: error("Caller is not an owner"),
        409: error(EMAIL_TAKEN),
    },
)
async def invite_user(body: UserCreate, owner: CurrentOwner, session: SessionDep) -> User:
    """An owner adds a user to their own tenant (never to another one)."""
    user = await add_user(
        session,
        tenant_id=owner.tenant_id,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        role=body.role,
    )
    await session.commit()
    return user


@router.get("", response_model=UserPage)
async def list_users(
    user: CurrentUser, session: SessionDep, page: Annotated[PageParams, Query()]
) -> UserPage:
    statement = (
        select(User).where(User.tenant_id == user.tenant_id).order_by(User.created_at, User.id)
    )
    rows, total = await fetch_page(session, statement, limit=page.limit, offset=page.offset)
    return UserPage(
        items=[UserPublic.model_validate(row) for row in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
